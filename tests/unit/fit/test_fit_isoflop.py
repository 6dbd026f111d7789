import numpy as np
import pandas as pd
import pytest

from fmlab.fit import HOFFMANN_PARAMS, FitWarning, IsoFlopFit

LAW = HOFFMANN_PARAMS  # a = beta / (alpha + beta) = 0.4516


def _isoflop_runs(noise=0.0, seed=0, spread=3.0, sizes=9, budgets=(1e18, 1e19, 1e20, 1e21)):
    """Runs on IsoFLOP lines around each budget's true optimum, loss from the law."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        n_opt, _ = LAW.compute_optimal(C)
        for N in n_opt * np.geomspace(1 / spread, spread, sizes):
            loss = LAW.predict(N, C / (6 * N)) * np.exp(noise * rng.standard_normal())
            rows.append((N, C, loss))
    return pd.DataFrame(rows, columns=["N", "C", "loss"])


def test_isoflop_recovers_the_allocation_exponent():
    df = _isoflop_runs()
    f = IsoFlopFit(n_bootstrap=0).fit(df.N, df.loss, df.C)
    # the parabola in log N is an approximation of the true valley: a small, known bias
    assert f.a_ == pytest.approx(LAW.a, abs=0.01)
    assert f.b_ == pytest.approx(LAW.b, abs=0.01) and f.a_ + f.b_ == pytest.approx(1.0)
    n_true, _ = LAW.compute_optimal(f.optima_.C.to_numpy())
    assert f.optima_.N_opt.to_numpy() == pytest.approx(n_true, rel=0.05)
    assert not f.optima_.extrapolated.any()
    n_pred, d_pred = f.predict_optimal(1e20)
    assert 6 * n_pred * d_pred == pytest.approx(1e20, rel=1e-6)


def test_isoflop_bootstrap_ci_contains_the_truth_with_noise():
    df = _isoflop_runs(noise=0.005, seed=1, sizes=11)
    f = IsoFlopFit(n_bootstrap=1000).fit(df.N, df.loss, df.C)
    assert f.ci_["a"].contains(LAW.a), f.ci_["a"]
    assert f.ci_["a"].width < 0.2 and f.bootstrap_.shape == (1000, 2)
    assert f.bootstrap_failed_ < 0.05


def test_isoflop_skips_unusable_budgets_with_a_warning():
    df = _isoflop_runs(budgets=(1e18, 1e19, 1e20))
    extra = pd.DataFrame({"N": [1e8, 2e8], "C": [1e21, 1e21], "loss": [2.5, 2.4]})
    with pytest.warns(FitWarning, match="skipped"):
        f = IsoFlopFit(n_bootstrap=0).fit(*pd.concat([df, extra])[["N", "loss", "C"]].T.values)
    assert len(f.optima_) == 3
    with pytest.raises(ValueError, match="at least 2"), pytest.warns(FitWarning):
        IsoFlopFit(n_bootstrap=0).fit(extra.N, extra.loss, extra.C)


def test_isoflop_flags_an_extrapolated_vertex():
    df = _isoflop_runs(budgets=(1e18, 1e19, 1e20))
    df = df[~((df["C"] == 1e20) & (df["N"] > LAW.compute_optimal(1e20)[0] * 0.9))]  # left arm only
    with pytest.warns(FitWarning, match="outside the sampled sizes"):
        f = IsoFlopFit(n_bootstrap=0).fit(df.N, df.loss, df.C)
    assert f.optima_.extrapolated.tolist() == [False, False, True]
