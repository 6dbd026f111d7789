"""The training setup shared by every study that trains: optimizer, schedule, loop."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fmlab.config import Config, added_field


class GrokfastConfig(Config):
    """Grokfast-EMA (Lee et al. 2024): add λ × an EMA (factor α) of past gradients."""

    alpha: float = Field(0.98, ge=0.0, lt=1.0)
    lamb: float = Field(2.0, ge=0.0)


class TrainConfig(Config):
    steps: int = Field(1000, ge=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "cosine", "linear"] = "constant"
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="final lr / lr for cosine/linear")
    batch_size: int | None = Field(None, ge=1, description="None = full batch")
    grad_clip: float | None = Field(None, gt=0)
    eval_every: int = Field(100, ge=1)
    grokfast: GrokfastConfig | None = None
    precision: Literal["fp32", "bf16", "fp16"] = added_field(
        "fp32", "autocast the forward and loss to bf16/fp16 (fp16 with a gradient scaler)"
    )
    tf32: bool = added_field(False, "allow TF32 matmuls on CUDA (faster, ~1e-3 relative error)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1); got {self.betas}")
        return self
