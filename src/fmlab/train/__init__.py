"""Training: the loop (a generator), its config, optimizers and schedules."""

from fmlab.train.config import GrokfastConfig, TrainConfig
from fmlab.train.data import iterate_batches
from fmlab.train.loop import Diverged, make_optimizer, train
from fmlab.train.schedule import lr_at

__all__ = [
    "Diverged",
    "GrokfastConfig",
    "TrainConfig",
    "iterate_batches",
    "lr_at",
    "make_optimizer",
    "train",
]
