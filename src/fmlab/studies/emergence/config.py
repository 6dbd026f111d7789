"""The ``emergence`` study's configuration: the size family (one axis, ``widths``), the
arithmetic/language mixture, the evaluation and the fits."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from fmlab.config import Config, execution_field
from fmlab.models import GPTConfig
from fmlab.studies.emergence.arithmetic import Task
from fmlab.tasks.language import LanguageConfig
from fmlab.train import TrainConfig


class EmergenceConfig(Config):
    tasks: list[str] = Field(
        ["add2", "add3", "add4", "mul2"],
        min_length=1,
        description="add<n> / mul<n>: n-digit operands, answers of n+1 / 2n digits",
    )
    main_task: str = Field("add4", description="the task the metric-contrast claims read")
    length_tasks: list[str] = Field(
        ["add2", "add3", "add4"],
        min_length=2,
        description="tasks whose answer lengths L the abruptness-vs-L claim compares",
    )
    reverse: bool = Field(True, description="answers least significant digit first")
    arith_frac: float = Field(0.75, gt=0, le=1, description="share of rows that are problems")
    language: LanguageConfig = LanguageConfig(vocab_size=16, order=2)
    model: GPTConfig = GPTConfig(n_layers=2, d_model=16, n_heads=2, d_mlp=64, act="gelu")
    widths: list[int] = Field(
        [8, 11, 16, 23, 32, 45, 64], min_length=6, description="d_model of the family"
    )
    head_dim: int = Field(8, ge=1, description="n_heads = d_model // head_dim (at least 1)")
    mlp_ratio: int = Field(4, ge=1, description="d_mlp = mlp_ratio * d_model")
    seq_len: int = Field(16, ge=4)
    train: TrainConfig = TrainConfig(
        steps=1500,
        lr=1e-2,
        batch_size=64,
        eval_every=100,
        warmup_steps=100,
        schedule="cosine",
        min_lr_ratio=0.1,
        grad_clip=1.0,
    )
    base_width: int = Field(16, ge=1, description="the width at which the peak lr is train.lr")
    lr_width_exponent: float = Field(0.5, ge=0, description="lr ∝ (base_width/width)^this")
    seeds: list[int] = Field([0, 1, 2], min_length=1)
    eval_problems: int = Field(400, ge=8, description="evaluation problems per task")
    choices: int = Field(4, ge=2, le=10, description="multiple-choice options per problem")
    eval_seed: int = 12345
    n_bootstrap: int = Field(200, ge=2, description="resamples of seeds and problems")
    ece_bins: int = Field(10, ge=2)
    workers: int = execution_field(1, "processes; each trains one width on 1 thread", ge=1)

    @field_validator("tasks", "length_tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        for name in v:
            Task.parse(name)  # a bad name: one line naming it
        if len(set(v)) != len(v):
            raise ValueError(f"tasks repeat: {v}")
        return v

    @model_validator(mode="after")
    def _check(self) -> EmergenceConfig:
        missing = [t for t in [self.main_task, *self.length_tasks] if t not in self.tasks]
        if missing:
            raise ValueError(f"{missing} are not among tasks {self.tasks}")
        if len(set(self.widths)) != len(self.widths):
            raise ValueError(f"widths repeat: {self.widths}")
        longest = max((Task.parse(t) for t in self.tasks), key=lambda t: t.row_len)
        if self.seq_len + 1 < longest.row_len:
            raise ValueError(
                f"seq_len={self.seq_len} is too short for {longest.name} (a problem takes "
                f"{longest.row_len} tokens: seq_len >= {longest.row_len - 1})"
            )
        lens = [Task.parse(t).answer_len for t in self.length_tasks]
        if len(set(lens)) < 2:
            raise ValueError(f"length_tasks must have at least two answer lengths, got {lens}")
        return self

    def gpt(self, width: int) -> GPTConfig:
        return self.model.at_width(width, self.head_dim, self.mlp_ratio)

    def train_at(self, width: int) -> TrainConfig:
        scale = (self.base_width / width) ** self.lr_width_exponent
        return self.train.model_copy(update={"lr": self.train.lr * scale})
