"""The recall study's summary: per-point statistics over seeds and the claims read from them."""

import numpy as np
import pytest
from scipy import stats

from fmlab.studies.recall import CLAIMS, SMOKE, summarise
from fmlab.studies.recall.train import RecallResult

CFG = SMOKE.model_copy(update={"mixers": ["attention", "ssm"], "seeds": [0, 1, 2]})
SMALL, LARGE = min(CFG.widths), max(CFG.widths)
N0, FEW, MANY = CFG.task.n_pairs, min(CFG.pair_counts), max(CFG.pair_counts)


def result(mixer: str, width: int, pairs: int, seed: int, acc: float) -> RecallResult:
    return RecallResult(mixer, width, pairs, seed, acc, 100, None, 10, 20, 0.1)


def results(table: dict[tuple[str, int, int], list[float]]) -> list[RecallResult]:
    return [
        result(m, w, n, seed, acc)
        for (m, w, n), accs in table.items()
        for seed, acc in zip(CFG.seeds, accs, strict=True)
    ]


# attention: one seed of three stuck on the plateau at the smallest width
TABLE = {
    ("attention", SMALL, N0): [1.0, 0.125, 0.995],
    ("attention", LARGE, N0): [1.0, 1.0, 0.999],
    ("attention", CFG.pairs_width, FEW): [1.0, 1.0, 1.0],
    ("ssm", SMALL, N0): [0.2, 0.985, 0.5],
    ("ssm", LARGE, N0): [0.9, 0.99, 0.7],
    ("ssm", CFG.pairs_width, FEW): [0.95, 0.99, 0.8],
}
assert CFG.pairs_width == SMALL and MANY == N0  # the pairs sweep reuses the width sweep's points


def claims(metrics):
    return {c.id: c.evaluate(metrics)["passed"] for c in CLAIMS if c.metric in metrics}


def test_reaching_99_percent_is_judged_on_the_best_seed_and_the_mean_keeps_the_stuck_one():
    out = summarise(CFG, results(TABLE))
    assert out["attention_best_acc_smallest_width"] == 1.0
    assert out["attention_seeds_solved_smallest_width"] == 2
    assert out["attention_acc_smallest_width"] == pytest.approx((1.0 + 0.125 + 0.995) / 3)
    assert out["ssm_best_acc_smallest_width"] == 0.985
    assert out["ssm_seeds_solved_smallest_width"] == 0
    verdict = claims(out)
    assert verdict["attention-solves-at-smallest-width"] is True
    assert verdict["ssm-short-at-smallest-width"] is True


def test_one_contender_seed_at_99_percent_breaks_its_falls_short_claim():
    table = TABLE | {("ssm", SMALL, N0): [0.2, 0.99, 0.5]}
    assert claims(summarise(CFG, results(table)))["ssm-short-at-smallest-width"] is False


def test_a_missing_seed_leaves_the_best_unmeasured_rather_than_taken_from_the_others():
    partial = [r for r in results(TABLE) if (r.mixer, r.d_model, r.seed) != ("attention", SMALL, 1)]
    out = summarise(CFG, partial)
    assert out["attention_best_acc_smallest_width"] is None
    assert claims(out)["attention-solves-at-smallest-width"] is False


def test_trends_are_per_seed_differences_with_t_intervals():
    out = summarise(CFG, results(TABLE))
    large, small = TABLE["ssm", LARGE, N0], TABLE["ssm", SMALL, N0]
    gain = [hi - lo for hi, lo in zip(large, small, strict=True)]
    assert out["ssm_width_gain_by_seed"] == pytest.approx(gain)
    mean, sem = sum(gain) / 3, stats.sem(gain)
    low, high = stats.t.interval(0.95, df=2, loc=mean, scale=sem)
    assert out["ssm_width_gain"] == pytest.approx(mean)
    ci = (out["ssm_width_gain_ci_low"], out["ssm_width_gain_ci_high"])
    assert ci == pytest.approx((low, high))
    drop = [a - b for a, b in zip(TABLE["ssm", SMALL, FEW], TABLE["ssm", SMALL, MANY], strict=True)]
    assert out["ssm_pairs_drop_by_seed"] == pytest.approx(drop)


def test_a_learning_rate_sweep_keeps_each_seeds_best_rate_and_its_accuracy():
    from fmlab.studies.recall import best_over_lrs

    def at(lr: float, seed: int, acc: float) -> RecallResult:
        return RecallResult("ssm", SMALL, N0, seed, acc, 100, None, 10, 20, 0.1, lr)

    swept = [at(1e-3, 0, 0.2), at(1e-2, 0, 0.9), at(1e-3, 1, 0.7), at(1e-2, 1, 0.7)]
    best = {r.seed: r for r in best_over_lrs(swept)}
    assert (best[0].lr, best[0].acc) == (1e-2, 0.9)
    assert (best[1].lr, best[1].acc) == (1e-3, 0.7)  # a tie keeps the first rate


def test_the_sweep_trains_every_rate_and_bad_rates_get_a_config_error():
    from fmlab.config import ConfigError, apply_overrides
    from fmlab.studies.recall import PAPER, train_configs

    assert [t.lr for t in train_configs(CFG)] == [CFG.train.lr]
    zoology = np.logspace(-4, -2, 4)  # Zoology's Fig. 2 sweep
    assert [t.lr for t in train_configs(PAPER)] == pytest.approx(zoology, rel=1e-12)
    for bad in ([0.0], [1e-3, 1e-3], [float("inf")]):
        with pytest.raises(ConfigError, match="lrs"):
            apply_overrides(CFG, {"lrs": bad})
