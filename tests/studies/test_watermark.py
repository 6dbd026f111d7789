"""The ``watermark`` study: on any causal LM (a tiny HF model here) as well as on the
known language, its config refuses inconsistent grids, and (slow) its quick preset shows
every claim."""

from __future__ import annotations

import pytest

from fmlab import get_study
from fmlab.config import ConfigError
from fmlab.runner import execute

STUDY = get_study("watermark")


def test_runs_on_a_causal_lm_directory_or_tiny_model(tmp_path, one_thread):
    pytest.importorskip("transformers")
    cfg = STUDY.resolve(
        "smoke",
        ["source=tiny-gpt2", "n_texts=8", "length=24", "lengths=[12,24]", "gof_keys=32"],
    )
    result = execute(STUDY, cfg, tmp_path, reraise=True)
    assert result.status == "completed"
    m = result.summary["metrics"]
    assert "ce_true_sampled_none" not in m  # no true distribution for a real model
    assert m["kl_kgw"] > 0 and m["tpr_z4_kgw_d2"] >= 0
    claims = {c["id"]: c for c in result.summary["claims"]}
    assert claims["fpr-at-z4-true-text"]["passed"] is None  # not tested: no true text
    assert claims["fpr-at-z4-model-text"]["passed"] in (True, False)


def test_runs_on_a_model_exported_by_fmlab_export(tmp_path, one_thread):
    """The study's own GPT, exported as a transformers directory, is a source like any
    causal LM; prompts come from a text file of its word-level tokens."""
    pytest.importorskip("transformers")
    from fmlab.models.hf.export import export_run

    first = execute(STUDY, STUDY.resolve("smoke", ["seeds=[0]"]), tmp_path / "runs")
    model_dir = export_run(first.path, tmp_path / "gpt", weights="gpt_seed0")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("t3 t1 t4 t1 t5\nt9 t2 t6 t5 t3\nt5 t8 t9 t7 t9\nt3 t2 t3 t8 t4\n")
    overrides = [f"source={model_dir}", f"prompt_data={prompts}", "n_texts=8", "seeds=[0]"]
    result = execute(STUDY, STUDY.resolve("smoke", overrides), tmp_path / "runs", reraise=True)
    assert result.status == "completed"
    assert result.summary["metrics"]["kl_kgw"] > 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lengths=[10,20]", "lengths must rise to length"),
        ("delta=3.0", "deltas must include"),
        ("prompt_len=1", "prompt_len must be"),
        ("window=40", "exceeds seq_len"),
        ("substitution=[0.1,0.3]", "substitution must include 0"),
    ],
)
def test_inconsistent_configs_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        STUDY.resolve("quick", [override])
