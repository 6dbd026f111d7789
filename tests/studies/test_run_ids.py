"""Run ids are the addresses of finished runs: a run made before a refactor must still be
found (and reused) after it. ``run_ids.json`` was written by the code of commit b8f3a7d
for every bundled study's presets, and for overrides that users type (the flat mixer
options such as ``model.d_state`` among them); the ids must never change by accident.

A preset whose setup is changed on purpose gets new ids, re-pinned here with the reason:
grokking ``quick`` (issue 18) no longer trains the Grokfast twin, whose claim it could not
test (it groks in ~1,500 steps; Lee et al. measured in a slow-grokking regime), so its
ids moved (bf78fd7c25 → faeb2c35ac …); its earlier runs are not reused. recall ``paper``
(issue 18) became Zoology's Fig. 2 setup as its configs run it — a learning-rate sweep per
point and attention with learned positions — so its ids moved (127447e227 → 263a4c20b9 …)."""

import json
from pathlib import Path

import pytest

from fmlab import get_study
from fmlab.config import config_hash

PINNED = json.loads((Path(__file__).parent / "run_ids.json").read_text())
CASES = [
    (study, preset, overrides, run_id)
    for study, presets in PINNED.items()
    for preset, by_override in presets.items()
    for overrides, run_id in by_override.items()
]


@pytest.mark.parametrize(
    ("study", "preset", "overrides", "run_id"), CASES, ids=[f"{c[0]}/{c[1]}/{c[2]}" for c in CASES]
)
def test_run_id_is_pinned(study, preset, overrides, run_id):
    spec = get_study(study)
    cfg = spec.resolve(preset, overrides.split(";") if overrides else [])
    assert config_hash(spec.name, cfg) == run_id


def test_no_pinned_preset_disappeared():
    from fmlab import all_studies

    current = {(s.name, p) for s in all_studies() for p in s.presets}
    assert {(s, p) for s, presets in PINNED.items() for p in presets} <= current
