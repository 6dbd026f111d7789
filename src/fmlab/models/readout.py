"""The core GPT on real-valued prompts: a linear read-in and a scalar read-out.

Garg et al. (2022, "What Can Transformers Learn In-Context?") feed a GPT-2 backbone the
prompt ``x_1, f(x_1), …, x_k, f(x_k)`` as vectors: a linear *read-in* maps each token
to the residual width, and a linear *read-out* maps the final residual at the position
of ``x_i`` to a scalar, the prediction of ``f(x_i)`` from the ``i`` examples before it.

This module adds exactly those two maps around :class:`fmlab.models.gpt.GPT`, called
as ``GPT(embeds=…, output="final")``: the blocks, the attention code and the hook sites
(``embed``, ``blocks.{i}.resid_pre``, ``blocks.{i}.attn.pattern`` … ``final``) are the
core model's own. The token embedding and unembedding of the core model are removed:
the read-in and read-out take their place, so the parameter count is honest.

    model = ReadoutGPT(GPTConfig(n_layers=4, d_model=64, n_heads=4, d_mlp=256),
                       n_dims=5, n_points=11, generator=torch.Generator().manual_seed(0))
    preds = model(xs, ys)  # xs (B, k, d), ys (B, k) -> (B, k)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fmlab.models.gpt import GPT, GPTConfig
from fmlab.models.layers import HookPoint, Linear


def interleave(xs: torch.Tensor, ys: torch.Tensor, *, mark_y: bool = False) -> torch.Tensor:
    """Tokens ``x_1, y_1, …, x_k, y_k``: ``xs (B, k, d)``, ``ys (B, k)`` → ``(B, 2k, d+1)``.

    As Garg's ``TransformerModel._combine``: an x token is ``[x, 0]`` and a y token is
    ``[y, 0, …, 0]`` (``y`` in the first coordinate), so a causal model's output at the
    position of ``x_i`` is its prediction of ``y_i`` from the examples before it (read
    it with :func:`x_positions`). Garg's tokens have width ``d``; the extra last
    coordinate is 0 by default (the same information) or, with ``mark_y``, 1 on y
    tokens as an explicit type flag.
    """
    batch, k, d = xs.shape
    x_tok = torch.cat([xs, xs.new_zeros(batch, k, 1)], dim=2)  # (B, k, d+1)
    y_tok = xs.new_zeros(batch, k, d + 1)  # (B, k, d+1)
    y_tok[:, :, 0] = ys
    if mark_y:
        y_tok[:, :, d] = 1.0
    return torch.stack([x_tok, y_tok], dim=2).reshape(batch, 2 * k, d + 1)


def x_positions(outputs: torch.Tensor) -> torch.Tensor:
    """Outputs at the x tokens, ``(B, 2k, …)`` → ``(B, k, …)``: the predictions of ``y_i``."""
    return outputs[:, 0::2]


class ReadoutGPT(nn.Module):
    """(x, y) tokens → read-in → core GPT blocks → read-out at the x positions."""

    def __init__(
        self,
        cfg: GPTConfig,
        *,
        n_dims: int,
        n_points: int,
        generator: torch.Generator,
        mark_y: bool = False,
    ):
        super().__init__()
        if n_dims < 1 or n_points < 1:
            raise ValueError(f"n_dims and n_points must be >= 1, got {n_dims}, {n_points}")
        self.n_dims, self.n_points, self.mark_y = n_dims, n_points, mark_y
        # The last y token is never read (no x follows it), so a prompt of k points is
        # 2k - 1 tokens long.
        self.gpt = GPT(cfg, vocab_size=1, seq_len=2 * n_points - 1, generator=generator)
        self.gpt.W_E = None  # replaced by the read-in (GPT.forward is called with embeds)
        self.gpt.W_U = None  # replaced by the read-out (GPT.forward returns "final")
        self.read_in = Linear(n_dims + 1, cfg.d_model, generator)  # token width d + 1
        self.read_out = Linear(cfg.d_model, 1, generator)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.gpt.blocks

    def forward(self, xs: Tensor, ys: Tensor) -> Tensor:
        """Predictions ``(B, k)``: output ``i`` predicts ``ys[:, i]`` from examples ``< i``."""
        B, k, d = xs.shape
        if d != self.n_dims or ys.shape != (B, k):
            raise ValueError(
                f"expected xs (B, k, {self.n_dims}) and ys (B, k); "
                f"got {tuple(xs.shape)} and {tuple(ys.shape)}"
            )
        if k > self.n_points:
            raise ValueError(f"prompt of {k} points exceeds the model's n_points={self.n_points}")
        tokens = interleave(xs, ys, mark_y=self.mark_y)[:, :-1]  # (B, 2k-1, d+1)
        h = self.gpt(embeds=self.read_in(tokens), output="final")  # (B, 2k-1, D)
        return self.read_out(x_positions(h)).squeeze(-1)  # (B, k)

    def sites(self) -> dict[str, HookPoint]:
        """The core model's canonical sites (``blocks.{i}.attn.pattern`` …)."""
        return self.gpt.sites()

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
