from fmlab.catalog import get_study
from fmlab.suites import suite_items


def test_every_suite_item_resolves_to_a_valid_config():
    for name in ("demo", "quick", "smoke"):
        items = suite_items(name)
        assert items
        for item in items:
            get_study(item.study).resolve(item.preset, item.overrides)  # as run_item does


def test_demo_runs_icl_without_its_sparse_model():
    (item,) = [i for i in suite_items("demo") if i.study == "icl"]
    icl = get_study("icl")
    assert icl.resolve(item.preset, item.overrides).sparse_task is None
    assert icl.resolve("quick", []).sparse_task is not None
