import pandas as pd
import pytest

from fmlab.catalog import get_study
from fmlab.config import apply_overrides
from fmlab.runner import execute
from fmlab.store import read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")  # the workers' thread count too


@pytest.mark.parametrize("name", ["recall", "scaling", "adaptation", "intrinsic-dim"])
def test_models_trained_in_worker_processes_give_the_same_run(name, tmp_path):
    study = get_study(name)
    smoke = study.preset("smoke")
    serial = execute(study, smoke, tmp_path / "serial", reraise=True)
    pooled = execute(study, apply_overrides(smoke, {"workers": 2}), tmp_path / "pool", reraise=True)
    assert pooled.status == "completed"
    pd.testing.assert_frame_equal(read_metrics(serial.path), read_metrics(pooled.path))
    assert serial.summary["metrics"] == pooled.summary["metrics"]
