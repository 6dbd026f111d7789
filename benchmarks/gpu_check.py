"""The prepared check for a machine with a CUDA GPU (issue 15): run it there, once.

1. Device checks on real hardware: ``auto`` resolves to the GPU; a model placed there
   keeps every parameter, gradient and optimizer state on it; the training loop moves
   CPU batches to it; bf16 autocast trains; a loop checkpoint saved on the GPU restores
   to the same state.
2. Speed: the first steps of the ``grokking`` paper preset (p = 113, 3 seeds as one
   batched ensemble) in bf16 on the GPU, and the same steps in fp32 on this machine's CPU,
   as steps per second and their ratio.

It prints one JSON line (and exits non-zero if a check fails). ``--device cpu`` runs the
same code on the CPU, to check the script itself where there is no GPU.

    python benchmarks/gpu_check.py [--device cuda] [--gpu-steps 600] [--cpu-steps 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fmlab import get_study
from fmlab.checkpoint import Policy
from fmlab.device import device_of, place, resolve, use
from fmlab.models import GPT, GPTConfig
from fmlab.runner import execute
from fmlab.store import Run
from fmlab.tasks.modular import ModularConfig, make_data
from fmlab.train import TrainConfig, iterate_batches, train


def device_checks(device: torch.device, tmp: Path) -> dict[str, bool]:
    data = make_data(ModularConfig(p=31, train_frac=0.5))  # on the CPU, as studies make it
    model_cfg = GPTConfig(d_model=64, n_heads=4, d_mlp=256, norm="none")
    model = GPT(model_cfg, vocab_size=33, seq_len=3, generator=torch.Generator().manual_seed(0))
    place(model, device)

    def loss_fn(model, batch):
        x, y = batch
        assert x.device.type == device.type  # the loop moved the CPU batch
        return F.cross_entropy(model(x)[:, -1], y)

    run = Run.start(tmp, "gpu-check", "run", {})
    run.checkpoints = Policy(True, 0.0)
    cfg = TrainConfig(steps=30, lr=3e-3, eval_every=10, precision="bf16")
    batches = iterate_batches((data.train_x, data.train_y), 64, torch.Generator().manual_seed(1))
    items = list(train(model, loss_fn, batches, cfg, checkpoint=run.checkpoint("loop")))
    on_device = all(p.device.type == device.type for p in model.parameters())
    grads = all(p.grad is None or p.grad.device.type == device.type for p in model.parameters())
    saved = run.checkpoint("loop")._load()
    restored = GPT(model_cfg, vocab_size=33, seq_len=3, generator=torch.Generator())
    place(restored, device).load_state_dict(saved.tensors["model"])
    pairs = zip(model.state_dict().values(), restored.state_dict().values(), strict=True)
    same = all(torch.equal(a, b) for a, b in pairs)
    opt_state = saved.tensors["optimizer"]["state"]
    return {
        "auto_is_this_device": resolve("auto").type == device.type,
        "params_on_device": on_device and device_of(model).type == device.type,
        "grads_on_device": grads,
        "bf16_trained": items[-1][1]["loss"] < items[1][1]["loss"],
        "checkpoint_restores": same and len(opt_state) > 0,
    }


def steps_per_second(device: str, steps: int, precision: str, tmp: Path) -> float:
    study = get_study("grokking")
    overrides = [f"train.steps={steps}", "train.eval_every=100000"]
    overrides += [f"train.precision={precision}", "compare_grokfast=null"]
    cfg = study.resolve("paper", overrides)
    started = time.perf_counter()
    result = execute(study, cfg, tmp, device=device, checkpoints=Policy(False), force=True)
    assert result.status == "completed", result.summary.get("error")
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--gpu-steps", type=int, default=600)
    parser.add_argument("--cpu-steps", type=int, default=20)
    args = parser.parse_args()
    device = resolve(args.device)
    with tempfile.TemporaryDirectory() as tmp, use(device):
        checks = device_checks(device, Path(tmp) / "checks")
        gpu = steps_per_second(str(device), args.gpu_steps, "bf16", Path(tmp) / "gpu")
        cpu = steps_per_second("cpu", args.cpu_steps, "fp32", Path(tmp) / "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    report = {
        "device": name,
        "checks": checks,
        "grokking_paper_steps_per_s": {"device_bf16": round(gpu, 2), "cpu_fp32": round(cpu, 3)},
        "speedup": round(gpu / cpu, 1),
    }
    print(json.dumps(report))
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
