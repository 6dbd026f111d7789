"""The ``adaptation`` study's parts: peft LoRA on the exported GPT (B = 0 leaves the
output unchanged; its merged update has rank ≤ r; bad ranks/targets are one line naming
the modules), LP-FT starting exactly from LP, the tasks and the ΔW measures."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from fmlab import get_study
from fmlab.config import ConfigError
from fmlab.errors import UserInputError
from fmlab.models import GPT, GPTConfig
from fmlab.models.hf.export import to_hf
from fmlab.studies.adaptation import SMOKE
from fmlab.studies.adaptation import measure as M
from fmlab.studies.adaptation.methods import (
    LoraSpec,
    causal_lm,
    model_shapes,
    resolve_targets,
    set_trainable,
    token_classifier,
    with_lora,
)
from fmlab.studies.adaptation.task import make_tasks, transfer_metrics
from fmlab.studies.adaptation.train import Seed
from fmlab.studies.representations.task import ShiftConfig
from fmlab.train.pool import CurveLog

V, T = 24, 12


@pytest.fixture(scope="module")
def base():
    cfg = GPTConfig(n_layers=2, d_model=32, n_heads=4, d_mlp=64, act="gelu")
    return GPT(cfg, vocab_size=V, seq_len=T, generator=torch.Generator().manual_seed(0)).eval()


def tokens(seed=1):
    return torch.randint(0, V, (4, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("targets", ["attn", "mlp", "all", ["mlp.c_fc"]])
@pytest.mark.parametrize("rslora", [False, True])
def test_lora_with_b_zero_leaves_the_output_unchanged(base, targets, rslora):
    hf, x = to_hf(base), tokens()
    spec = LoraSpec(rank=4, targets=targets, rslora=rslora)
    with torch.no_grad():
        lm = with_lora(causal_lm(hf), spec, 0, classifier=False)
        assert torch.equal(lm(input_ids=x).logits, hf(input_ids=x).logits)
        clf = token_classifier(hf, 5, torch.Generator().manual_seed(2))
        before = clf(input_ids=x).logits
        assert torch.equal(with_lora(clf, spec, 0, classifier=True)(input_ids=x).logits, before)
    names = {n.split(".h.0.")[1].split(".lora_A")[0] for n, _ in lm.named_parameters()
             if ".h.0." in n and "lora_A" in n}  # fmt: skip
    assert names == set(resolve_targets(spec, model_shapes(hf)))
    trainable = {n for n, p in lm.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)  # an LM trains adapters only


def test_a_trained_lora_update_has_rank_at_most_r_and_merges_exactly(base):
    hf, x = to_hf(base), tokens(3)
    lm = with_lora(causal_lm(hf), LoraSpec(rank=3, targets="attn"), 0, classifier=False)
    with torch.no_grad():
        for name, p in lm.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
        tuned = M.as_gpt(lm, hf.lm_head.weight)
        assert (tuned(x) - lm(input_ids=x).logits).abs().max().item() <= 1e-4
    spectra = M.update_spectra(base, tuned, r=3)
    for name, s in spectra.items():
        rank = int(np.sum(s["sv"] > 1e-6 * max(s["sv"].max(), 1e-30)))
        if ".mixer." in name:  # q, k, v (c_attn) and o (c_proj): adapted
            assert 1 <= rank <= 3 and s["energy_top_r"] == pytest.approx(1.0), name
        else:  # the MLP was not targeted: no update at all
            assert s["sv"].max() == 0.0, name


def test_bad_lora_ranks_and_targets_are_one_line_naming_the_modules(base):
    shapes = model_shapes(to_hf(base))
    assert list(shapes) == ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
    with pytest.raises(UserInputError) as e:
        resolve_targets(LoraSpec(targets=["q_proj"]), shapes)
    msg = str(e.value)
    assert "'q_proj' matches no module" in msg and "attn.c_attn, attn.c_proj, mlp.c_fc" in msg
    assert "\n" not in msg
    with pytest.raises(UserInputError, match=r"rank 40 exceeds the rank of attn.c_attn \(32×96\)"):
        resolve_targets(LoraSpec(rank=40), shapes)
    with pytest.raises(UserInputError, match="matches no module"):
        with_lora(causal_lm(to_hf(base)), LoraSpec(targets="c_attn"), 0, classifier=False)
    study = get_study("adaptation")  # and at config time, before anything runs
    for bad, says in (("lora.targets=[mlp.w_in]", "matches no module"),
                      ("lora.rank=17", r"exceeds the rank of attn.c_attn \(16×48\)"),
                      ("lora.rank=0", "greater than or equal to 1")):  # fmt: skip
        with pytest.raises(ConfigError, match=says):
            study.resolve("smoke", [bad])


def test_lp_ft_starts_from_the_probe_and_the_probe_moves_only_the_head(tmp_path):
    cfg = SMOKE.override("finetune.steps=6")
    s = Seed(cfg, 0, CurveLog())
    base_hf = to_hf(GPT(cfg.model, vocab_size=16, seq_len=12,
                        generator=torch.Generator().manual_seed(0)))  # fmt: skip
    lp, _ = s.transfer_arm(base_hf, "lp", 1e-2)
    again, _ = s.transfer_arm(base_hf, "lp", 1e-2)  # LP-FT's first phase: the same run
    for (name, a), b in zip(lp.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    body = {k: v for k, v in lp.transformer.state_dict().items()}
    assert all(torch.equal(v, base_hf.transformer.state_dict()[k]) for k, v in body.items())
    zero = Seed(cfg.override("finetune.steps=0"), 0, CurveLog())
    start, _ = zero.transfer_arm(base_hf, "lp-ft", 1e-3, probe=lp)
    for (name, a), b in zip(start.state_dict().items(), lp.state_dict().values(), strict=True):
        assert torch.equal(a, b), name  # phase 2 begins at the probe, head included
    tuned, _ = s.transfer_arm(base_hf, "lp-ft", 1e-3, probe=lp)
    assert not torch.equal(
        tuned.transformer.h[0].mlp.c_fc.weight, lp.transformer.h[0].mlp.c_fc.weight
    )


def test_last_layer_freezes_everything_below_the_last_block(base):
    clf = token_classifier(to_hf(base), 3, torch.Generator().manual_seed(0))
    set_trainable(clf, "last-layer")
    on = {n for n, p in clf.named_parameters() if p.requires_grad}
    assert on and all(
        n.startswith(("transformer.h.1.", "transformer.ln_f", "classifier")) for n in on
    )


def test_the_tasks_shift_classes_and_relabel_the_source_chain():
    cfg = ShiftConfig(n_classes=6, tokens_per_class=3, seq_len=10)
    t = make_tasks(cfg, 3, seed=5)
    assert sorted([*t.id_classes.tolist(), *t.ood_classes.tolist()]) == list(range(6))
    g = torch.Generator().manual_seed(0)
    for lang, classes in ((t.id_lang, t.id_classes), (t.ood_lang, t.ood_classes),
                          (t.domain_lang, t.ood_classes)):  # fmt: skip
        seen = set(t.class_of[lang.sample(200, g)].unique().tolist())
        assert seen == set(classes.tolist())  # every allowed class, no other
        torch.testing.assert_close(lang.transition.sum(1), torch.ones(9))
    # the ID language is the source chain on its classes: same conditional ratios
    a, b = t.id_classes.tolist()[:2]
    row = t.source.transition[a * 6 + b, t.id_classes]
    torch.testing.assert_close(t.id_lang.transition[1], row / row.sum())
    # the new domain's grammar is not the old one's
    assert not torch.allclose(t.domain_lang.transition, t.ood_lang.transition)
    # the rule is the source chain with its classes permuted: same rows, reordered
    assert torch.equal(t.rule.sort(1).values, t.source.transition.sort(1).values)
    x = t.id_lang.sample(64, g)
    p = t.label_dist(x)
    torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:2]))

    class Oracle(torch.nn.Module):  # logits = log of the rule: Bayes accuracy
        def forward(self, input_ids):
            lp = t.label_dist(input_ids).log()
            return type("Out", (), {"logits": torch.cat([lp[:, :1], lp], 1)})()

    m = transfer_metrics(Oracle(), x, t)
    assert m["acc"] == pytest.approx(m["bayes_acc"]) and m["acc"] < 1


def test_energy_and_overlap_measures():
    rng = np.random.default_rng(0)
    low = rng.standard_normal((40, 3)) @ rng.standard_normal((3, 30))
    assert M.energy_top(np.linalg.svd(low, compute_uv=False), 3) == pytest.approx(1.0)
    a = torch.from_numpy(low)
    assert M.subspace_overlap(a, 2 * a, 3) == pytest.approx(1.0)
    chance = np.mean([M.subspace_overlap(a, torch.randn(40, 30), 3) for _ in range(50)])
    assert chance == pytest.approx(3 / 40, rel=0.5)
    assert 0.1 < M.random_energy_top([(64, 64)], 8, 0) < 0.5  # a dense update is not low rank


@pytest.mark.slow
def test_a_terminated_run_resumes_to_the_same_metrics(tmp_path):
    """SIGTERM (a scheduler's time limit) mid-run, rerun: the metrics of a run never cut."""
    from tests.reliability.helpers import cli

    env = {"OMP_NUM_THREADS": "1", **__import__("os").environ}
    args = lambda out, *x: cli("run", "adaptation", "-p", "smoke", "--set",  # noqa: E731
                                "finetune.steps=40", "--threads", "1", "--no-report",
                                "--out", out, *x)  # fmt: skip
    ref = subprocess.run(args(tmp_path / "ref", "--no-checkpoint"), env=env, capture_output=True)
    assert ref.returncode == 0, ref.stderr.decode()
    out = tmp_path / "cut"
    proc = subprocess.Popen(args(out, "--checkpoint-every", "0"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while len(list(out.glob("adaptation/*/checkpoints/*.json"))) < 3:
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    if not list(out.glob("adaptation/*/summary.json")):  # it was stopped: resume it
        again = subprocess.run(args(out, "--checkpoint-every", "0"), env=env, capture_output=True)
        assert again.returncode == 0, again.stderr.decode()
    ((a_dir,), (b_dir,)) = (list((tmp_path / "ref" / "adaptation").iterdir()),
                            list((out / "adaptation").iterdir()))  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_parquet(a_dir / "metrics.parquet"),
                                  pd.read_parquet(b_dir / "metrics.parquet"))  # fmt: skip
    a, b = (json.loads((d / "summary.json").read_text())["metrics"] for d in (a_dir, b_dir))
    assert a == b
