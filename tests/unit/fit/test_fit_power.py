import numpy as np
import pytest

from fmlab.fit import PowerLaw, SaturatingPowerLaw


def _power_data(n=30, noise=0.02, seed=0):
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e6, 1e10, n)
    return x, 50.0 * x**-0.2 * np.exp(noise * rng.standard_normal(n))


def test_power_law_recovers_parameters_with_bootstrap_cis():
    x, y = _power_data()
    f = PowerLaw(n_bootstrap=1000).fit(x, y)
    assert f.alpha_ == pytest.approx(0.2, abs=0.01)
    assert f.A_ == pytest.approx(50.0, rel=0.2)  # noqa: SIM300
    assert f.ci_["alpha"].contains(0.2) and f.ci_["A"].contains(50.0)
    assert f.r2_ > 0.99 and f.residual_std_ == pytest.approx(0.02, rel=0.4)
    assert f.bootstrap_.shape == (1000, 2)
    # the closed form is ordinary least squares in log-log space
    slope, intercept = np.polyfit(np.log(x), np.log(y), 1)
    assert (f.alpha_, np.log(f.A_)) == pytest.approx((-slope, intercept))
    assert f.predict(x[:2]) == pytest.approx(f.A_ * x[:2] ** -f.alpha_)


def test_power_law_ci_coverage():
    hits = []
    for s in range(100):
        x, y = _power_data(n=20, noise=0.05, seed=100 + s)
        hits.append(PowerLaw(n_bootstrap=500, seed=s).fit(x, y).ci_["alpha"].contains(0.2))
    assert 0.85 <= np.mean(hits) <= 1.0  # percentile bootstrap, n = 20: mildly liberal


def test_power_law_input_errors():
    with pytest.raises(ValueError, match="non-positive"):
        PowerLaw().fit([1.0, 2.0, 3.0], [1.0, 0.0, 2.0])
    with pytest.raises(ValueError, match="distinct"):
        PowerLaw().fit([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])


def _saturating_data(noise, seed=0, n=25):
    rng = np.random.default_rng(seed)
    x = np.geomspace(1e7, 1e11, n)
    return x, (1.7 + 400.0 * x**-0.3) * np.exp(noise * rng.standard_normal(n))


def test_saturating_power_law_exact_and_noisy_recovery():
    x, y = _saturating_data(0.0)
    f = SaturatingPowerLaw(n_bootstrap=0).fit(x, y)
    assert (f.E_, f.A_, f.alpha_) == pytest.approx((1.7, 400.0, 0.3), rel=1e-5)
    assert f.converged_ and f.r2_ == pytest.approx(1.0)
    x, y = _saturating_data(0.003, seed=1)
    f = SaturatingPowerLaw(n_bootstrap=300).fit(x, y)
    assert f.E_ == pytest.approx(1.7, rel=0.03)  # noqa: SIM300
    assert f.alpha_ == pytest.approx(0.3, abs=0.05)
    for k, v in (("E", 1.7), ("A", 400.0), ("alpha", 0.3)):
        assert f.ci_[k].contains(v), (k, f.ci_[k])
    assert f.bootstrap_converged_ > 0.95
    assert f.predict(x) == pytest.approx(f.E_ + f.A_ * x**-f.alpha_)


def test_saturating_power_law_needs_enough_points():
    with pytest.raises(ValueError, match="at least 4"):
        SaturatingPowerLaw().fit([1.0, 2.0, 3.0], [3.0, 2.0, 1.5])
