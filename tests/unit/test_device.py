"""Devices: ``auto`` finds a GPU when there is one (CUDA mocked here: this machine has
none), a missing device is one clear error, and what a run builds is placed on its device
(checked on PyTorch's ``meta`` device, which allocates nothing)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fmlab.device import current, device_of, place, resolve, use
from fmlab.errors import UserInputError
from fmlab.models import GPT, GPTConfig
from fmlab.tasks.modular import ModularConfig, make_data
from fmlab.tasks.mqar import MQARConfig
from fmlab.tasks.mqar import make_data as mqar_data
from fmlab.train import TrainConfig, iterate_batches, train


def test_auto_is_the_cpu_here_and_cuda_where_there_is_one(monkeypatch):
    assert resolve("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert resolve("auto") == torch.device("cpu") or resolve("auto").type == "mps"
        with pytest.raises(UserInputError, match="no CUDA GPU here"):
            resolve("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve("auto") == torch.device("cuda")
    assert resolve("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserInputError, match="has 2 CUDA GPU"):
        resolve("cuda:2")
    with pytest.raises(UserInputError, match="choose auto"):
        resolve("tpu")


def test_use_sets_the_current_device_for_a_block_only():
    assert current() == torch.device("cpu")
    with use("meta") as where:
        assert current() == where == torch.device("meta")
    assert current() == torch.device("cpu")


def test_place_moves_models_and_every_tensor_of_task_data():
    with use("meta"):
        model = place(GPT(GPTConfig(d_model=16, n_heads=2, d_mlp=32), vocab_size=13, seq_len=3,
                          generator=torch.Generator().manual_seed(0)))  # fmt: skip
        modular = place(make_data(ModularConfig(p=13)))
        mqar = place(mqar_data(MQARConfig(vocab_size=16, seq_len=16, n_pairs=2, n_train=8,
                                          n_test=4)))  # fmt: skip
    assert device_of(model) == torch.device("meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    for data in (modular, mqar):
        tensors = [v for v in vars(data).values() if isinstance(v, torch.Tensor)]
        assert tensors and {t.device.type for t in tensors} == {"meta"}
    assert modular.p == 13  # the rest is kept


def test_the_training_loop_moves_each_batch_to_the_models_device():
    cpu_model = GPT(GPTConfig(d_model=16, n_heads=2, d_mlp=32), vocab_size=13, seq_len=3,
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    model = place(cpu_model, torch.device("meta"))
    data = make_data(ModularConfig(p=13))  # on the CPU
    seen = []

    class Stop(Exception):
        pass

    def loss_fn(model, batch):
        seen.append((batch[0].device.type, batch[1].device.type, device_of(model).type))
        raise Stop

    loop = train(model, loss_fn, iterate_batches((data.train_x, data.train_y), 8,
                 torch.Generator()), TrainConfig(steps=3))  # fmt: skip
    next(loop)
    with pytest.raises(Stop):
        next(loop)
    assert seen == [("meta", "meta", "meta")]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_cpu_close_to_fp32(precision):
    data = make_data(ModularConfig(p=13, train_frac=0.6))

    def run(p: str) -> float:
        model = GPT(GPTConfig(d_model=32, n_heads=2, d_mlp=64, norm="none"), vocab_size=15,
                    seq_len=3, generator=torch.Generator().manual_seed(0))  # fmt: skip

        def loss_fn(model, batch):
            x, y = batch
            return F.cross_entropy(model(x)[:, -1], y)

        batches = iterate_batches((data.train_x, data.train_y), None, torch.Generator())
        cfg = TrainConfig(steps=40, lr=3e-3, eval_every=40, precision=p)
        return [m for _, m in train(model, loss_fn, batches, cfg)][-1]["loss"]

    full, mixed = run("fp32"), run(precision)
    assert mixed != full  # it did compute in lower precision …
    assert mixed == pytest.approx(full, rel=0.1)  # … and learned as much (40 steps)
