"""What parameter-efficient training costs per step: LoRA (peft) against full fine-tuning,
and training in a random subspace θ₀ + Pθ_d against ordinary training.

Part 1 — the ``adaptation`` study's quick model (4 layers, d_model 64, d_mlp 256, the
class-Markov language: V = 64, T = 24, batch 32), exported to a transformers GPT-2 as the
study does, trained as a causal LM (the study's domain task) for ``--steps`` steps:

* ``full FT`` — every weight trainable;
* ``LoRA r=8`` — peft ``LoraConfig(r=8, targets = all four block matrices)``, as in quick.

Part 2 — the ``intrinsic-dim`` study's quick classifier (2 layers, d_model 32, a linear
head), ``--steps`` steps of its classification task:

* ``plain`` — ordinary training of all D weights;
* ``dense d`` / ``fastfood d`` — only θ_d trained, P dense Gaussian or Fastfood, at a
  small d (where the study uses dense) and a large one (Fastfood).

Part 3 — the projection alone (forward + backward of P θ_d, no model), dense vs
Fastfood over d at the quick D: where Fastfood becomes the cheaper one, which is where
``intrinsic-dim``'s ``dense_max`` (D·d) is set.

All contenders of a part run interleaved in the same rounds (A, B, A, B …), one thread.

    python benchmarks/lora.py [--steps 30] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import emit, interleaved, row, speedup

from fmlab.models import GPT
from fmlab.models.hf.export import to_hf
from fmlab.studies.adaptation import QUICK as ADAPT
from fmlab.studies.adaptation.methods import causal_lm, n_trainable, with_lora
from fmlab.studies.adaptation.task import lm_loss, make_tasks
from fmlab.studies.intrinsic_dim import QUICK as INTRINSIC
from fmlab.studies.intrinsic_dim.subspace import Subspace, projection
from fmlab.studies.intrinsic_dim.train import Classifier, cls_loss
from fmlab.train import train


def fixed(batches: list[torch.Tensor]):
    while True:
        yield from batches


def run_steps(model, loss, batches, cfg):
    def go():
        for _ in train(model, loss, fixed(batches), cfg):
            pass

    return go


def lora_part(steps: int, rounds: int) -> tuple[list[dict], dict]:
    cfg = ADAPT
    tasks = make_tasks(cfg.language, cfg.n_id_classes, 0)
    src = tasks.source
    base = to_hf(GPT(cfg.model, vocab_size=src.vocab_size, seq_len=src.seq_len,
                     generator=torch.Generator().manual_seed(0)))  # fmt: skip
    g = torch.Generator().manual_seed(1)
    bs = cfg.finetune.batch_size or 32
    batches = [tasks.domain_lang.sample(bs, g) for _ in range(steps)]
    tc = cfg.finetune.model_copy(update={"steps": steps, "eval_every": steps})
    ft = causal_lm(base)
    lora = with_lora(causal_lm(base), cfg.lora, 0, classifier=False)
    fns = {"full FT": run_steps(ft, lm_loss, batches, tc),
           "LoRA": run_steps(lora, lm_loss, batches, tc)}  # fmt: skip
    times = interleaved(fns, rounds, warmup=True)
    label = f"LoRA r={cfg.lora.rank} / full FT step (speed)"
    detail = {
        "model": f"{cfg.model.n_layers} layers, d_model {cfg.model.d_model}, batch {bs}, "
        f"T {src.seq_len}",
        "trainable": {"full FT": n_trainable(ft), "LoRA": n_trainable(lora)},
        "ms_per_step": {k: 1e3 * statistics.median(v) / steps for k, v in times.items()},
    }
    return [row(label, speedup(times, "full FT", "LoRA"))], detail


def subspace_part(steps: int, rounds: int, ds: tuple[int, int]) -> tuple[list[dict], dict]:
    cfg = INTRINSIC
    tasks = make_tasks(cfg.language, cfg.language.n_classes // 2, 0)
    src = tasks.source

    def classifier() -> Classifier:
        gpt = GPT(cfg.model, vocab_size=src.vocab_size, seq_len=src.seq_len,
                  generator=torch.Generator().manual_seed(0))  # fmt: skip
        return Classifier(gpt, tasks.n_classes, torch.Generator().manual_seed(1))

    D = sum(p.numel() for p in classifier().parameters())
    g = torch.Generator().manual_seed(2)
    bs = cfg.finetune.batch_size or 32
    batches = [src.sample(bs, g) for _ in range(steps)]
    tc = cfg.finetune.model_copy(update={"steps": steps, "eval_every": steps})
    loss = lambda m, b: cls_loss(m, b, tasks)  # noqa: E731
    fns = {"plain": run_steps(classifier(), loss, batches, tc)}
    for d in ds:
        for kind in ("dense", "fastfood"):
            proj = projection(kind, D, d, torch.Generator().manual_seed(3), 0)
            fns[f"{kind} d={d}"] = run_steps(Subspace(classifier(), d, proj), loss, batches, tc)
    times = interleaved(fns, rounds, warmup=True)
    rows = [row(f"subspace {k} / plain training step (speed)", speedup(times, "plain", k))
            for k in fns if k != "plain"]  # fmt: skip
    detail = {"D": D, "ms_per_step": {k: 1e3 * statistics.median(v) / steps
                                      for k, v in times.items()}}  # fmt: skip
    return rows, detail


def projection_part(rounds: int, D: int, ds: list[int], calls: int = 20) -> tuple[list, dict]:
    """Forward + backward of P θ_d alone, dense vs Fastfood, per d."""
    rows, detail = [], {}
    for d in ds:
        fns = {}
        for kind in ("dense", "fastfood"):
            P = projection(kind, D, d, torch.Generator().manual_seed(0), 0)
            theta = torch.zeros(d, requires_grad=True)
            w = torch.randn(D)

            def go(P=P, theta=theta, w=w):
                for _ in range(calls):
                    (P(theta) @ w).backward()

            fns[kind] = go
        times = interleaved(fns, rounds, warmup=True)
        rows.append(row(f"projection Fastfood / dense (speed), D={D}, d={d} (D·d={D * d:.1e})",
                        speedup(times, "dense", "fastfood")))  # fmt: skip
        detail[d] = {k: 1e3 * statistics.median(v) / calls for k, v in times.items()}
    return rows, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as fmlab.runner.numerics() does for every run
    rows, lora_detail = lora_part(args.steps, args.rounds)
    print(f"LoRA vs full FT: {lora_detail}")
    sub_rows, sub_detail = subspace_part(args.steps, args.rounds, (64, 4096))
    print(f"subspace vs plain: {sub_detail}")
    proj_rows, proj_detail = projection_part(args.rounds, sub_detail["D"],
                                             [16, 32, 64, 128, 256, 1024])  # fmt: skip
    print(f"projection alone, ms per forward+backward: {proj_detail}")
    emit("lora", rows + sub_rows + proj_rows, steps=args.steps,
         threads=torch.get_num_threads(), lora=lora_detail, subspace=sub_detail,
         projection_ms=proj_detail)  # fmt: skip


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"({time.perf_counter() - t0:.0f} s)")
