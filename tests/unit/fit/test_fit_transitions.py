import math

import numpy as np
import pytest

from fmlab.fit import TransitionFit, fit_changepoint


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_grokking_like_rise_on_a_log_axis():
    # test accuracy rises from chance (0.1) to 0.99 around step 3000, width 0.25 in log-steps
    rng = np.random.default_rng(0)
    t = np.geomspace(10, 1e5, 120)
    y = 0.1 + 0.89 * _sigmoid((np.log(t) - np.log(3000)) / 0.25) + rng.normal(0, 0.02, t.size)
    f = TransitionFit().fit(t, y)
    assert f.t0_ == pytest.approx(3000, rel=0.05)
    assert f.width_ == pytest.approx(0.25, rel=0.15)
    assert (f.lo_, f.hi_) == pytest.approx((0.1, 0.99), abs=0.02)
    assert f.onset_ < f.t0_ < f.end_
    assert math.log(f.end_ / f.onset_) == pytest.approx(2 * f.width_ * math.log(9))
    assert f.r2_ > 0.98 and f.converged_
    assert f.rmse_ == pytest.approx(0.02, rel=0.3)
    assert f.predict([f.t0_])[0] == pytest.approx((f.lo_ + f.hi_) / 2)


def test_induction_head_like_drop_on_a_linear_axis():
    # in-context loss drops from 4.0 to 2.5 around step 1200 (linear axis, width 60 steps)
    rng = np.random.default_rng(1)
    t = np.arange(0, 3000, 25.0)
    y = 4.0 - 1.5 * _sigmoid((t - 1200) / 60) + rng.normal(0, 0.05, t.size)
    f = TransitionFit(log_x=False).fit(t, y)
    assert f.t0_ == pytest.approx(1200, abs=20)
    assert f.width_ == pytest.approx(60, rel=0.3)
    assert (f.lo_, f.hi_) == pytest.approx((4.0, 2.5), abs=0.05)


def test_transition_initialization_finds_a_late_jump():
    # a late, sharp jump that a start in the middle of the range would miss
    t = np.geomspace(1, 1e6, 60)
    y = 0.2 + 0.7 * _sigmoid((np.log(t) - np.log(2e5)) / 0.05)
    f = TransitionFit().fit(t, y)
    assert f.t0_ == pytest.approx(2e5, rel=0.1)
    assert f.r2_ > 0.999


def test_transition_input_errors():
    with pytest.raises(ValueError, match="non-positive"):
        TransitionFit().fit([0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="at least 5"):
        TransitionFit(log_x=False).fit([0, 1, 2], [0, 0, 1])


def test_changepoint():
    rng = np.random.default_rng(2)
    t = np.arange(200.0)
    y = np.where(t < 130, 0.1, 0.9) + rng.normal(0, 0.05, t.size)
    cp = fit_changepoint(t, y)
    assert cp.index == 130 and cp.t == 130.0
    assert (cp.before, cp.after) == pytest.approx((0.1, 0.9), abs=0.02)
    assert cp.explained > 0.95
    flat = fit_changepoint(t, np.zeros(200))
    assert flat.explained == 0.0


def test_flat_curve_does_not_overflow():
    t = np.arange(1, 60, dtype=float)
    fit = TransitionFit().fit(t, np.full_like(t, 0.3) + 1e-9 * np.sin(t))
    assert np.isfinite(fit.predict(t)).all() and abs(fit.hi_ - fit.lo_) < 1e-3
