"""Calibration: does a model's confidence match how often it is right?

Top-label calibration as in Guo et al. 2017 ("On Calibration of Modern Neural
Networks", ICML): for each example take the confidence (max probability) and whether
the argmax is correct, bin by confidence, and compare each bin's mean confidence with
its accuracy.

* ECE = Σ_b (n_b / n) |acc_b − conf_b| (Naeini et al. 2015); MCE = max_b |acc_b − conf_b|.
* ``strategy="uniform"``: B equal-width bins on [0, 1], bin b = (b/B, (b+1)/B] (the
  first also takes 0). ``strategy="quantile"``: equal-mass ("adaptive") bins of n/B
  examples each, sorted by confidence (Nixon et al. 2019, "Measuring Calibration in
  Deep Learning"), which avoids the nearly empty high-variance bins of equal width.
* Brier score (Brier 1950), multiclass: mean_i Σ_k (p_ik − 1[y_i = k])².
* NLL: mean_i −log p_{i, y_i}.
* Temperature scaling (Guo et al. 2017, §4.2): one scalar T > 0 divides the logits,
  fitted by minimising held-out NLL; it changes confidence, never the argmax.

Probabilities are (n, K) rows summing to 1; labels are (n,) class indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from fmlab.measure._arrays import ArrayLike, as_float64, as_labels, readonly

STRATEGIES = ("uniform", "quantile")


@dataclass(frozen=True)
class ReliabilityDiagram:
    """Per-bin data for a reliability diagram; arrays are (n_bins,) and read-only.

    Empty bins (possible with ``uniform``) have count 0 and NaN confidence/accuracy.
    ``edges`` (n_bins + 1,) are the bin boundaries in confidence.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray
    strategy: str

    @property
    def gaps(self) -> np.ndarray:
        return np.abs(self.accuracy - self.confidence)  # (n_bins,)


@dataclass(frozen=True)
class CalibrationReport:
    """The usual calibration numbers for one set of predictions."""

    ece: float  # equal-width bins
    ece_adaptive: float  # equal-mass bins
    mce: float  # equal-width bins
    brier: float
    nll: float
    accuracy: float
    mean_confidence: float
    n: int
    n_bins: int


@dataclass(frozen=True)
class TemperatureFit:
    """A fitted temperature and what it did to the NLL and (equal-width) ECE."""

    temperature: float
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float
    n: int


# ---------------------------------------------------------------- inputs
def _probs_labels(probs: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    P = as_float64(probs, "probs", ndim=2)  # (n, K)
    y = as_labels(labels)  # (n,)
    if P.shape[0] != y.shape[0]:
        raise ValueError(f"probs has {P.shape[0]} rows but labels has {y.shape[0]}")
    if P.shape[0] == 0:
        raise ValueError("need at least one example")
    if y.min() < 0 or y.max() >= P.shape[1]:
        raise ValueError(f"labels must be in [0, {P.shape[1]}), got [{y.min()}, {y.max()}]")
    if np.any(P < 0) or not np.allclose(P.sum(axis=1), 1.0, atol=1e-4):
        raise ValueError("probs rows must be non-negative and sum to 1 (pass softmax(logits))")
    return P, y


def softmax(logits: ArrayLike) -> np.ndarray:
    """Row-wise softmax of (n, K) logits in float64, numerically stable."""
    return np.exp(log_softmax(as_float64(logits, "logits", ndim=2), axis=1))


# ----------------------------------------------------------------- binning
def _bin_index(conf: np.ndarray, n_bins: int, strategy: str) -> tuple[np.ndarray, np.ndarray]:
    """Bin of each example (n,) and the bin edges (n_bins + 1,)."""
    if strategy == "uniform":
        idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
        return idx, np.linspace(0.0, 1.0, n_bins + 1)
    if strategy != "quantile":
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if n_bins > conf.size:
        raise ValueError(f"{n_bins} equal-mass bins need at least as many examples")
    order = np.argsort(conf, kind="stable")
    chunks = np.array_split(order, n_bins)  # sizes differ by at most 1
    idx = np.empty(conf.size, dtype=np.int64)
    for b, chunk in enumerate(chunks):
        idx[chunk] = b
    sorted_conf = conf[order]
    starts = np.cumsum([len(c) for c in chunks])[:-1]  # first position of bins 1..B-1
    inner = (sorted_conf[starts - 1] + sorted_conf[starts]) / 2.0
    edges = np.concatenate([[0.0], inner, [1.0]])
    return idx, edges


def reliability_diagram(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, strategy: str = "uniform"
) -> ReliabilityDiagram:
    """Per-bin mean confidence, accuracy and count of the top-label predictions."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    P, y = _probs_labels(probs, labels)
    conf = P.max(axis=1)  # (n,)
    correct = (P.argmax(axis=1) == y).astype(np.float64)  # (n,)
    idx, edges = _bin_index(conf, n_bins, strategy)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return ReliabilityDiagram(
        edges=readonly(edges),
        confidence=readonly(mean_conf),
        accuracy=readonly(acc),
        count=readonly(count),
        strategy=strategy,
    )


def _ece_mce(diagram: ReliabilityDiagram) -> tuple[float, float]:
    full = diagram.count > 0
    gaps = diagram.gaps[full]
    weights = diagram.count[full] / diagram.count.sum()
    return float(np.sum(weights * gaps)), float(gaps.max())


# ----------------------------------------------------------------- metrics
def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, strategy: str = "uniform") -> float:
    """Expected calibration error of the top-label confidence (Guo et al. 2017, eq. 3)."""
    return _ece_mce(reliability_diagram(probs, labels, n_bins, strategy))[0]


def mce(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15, strategy: str = "uniform") -> float:
    """Maximum calibration error: the worst non-empty bin's |accuracy − confidence|."""
    return _ece_mce(reliability_diagram(probs, labels, n_bins, strategy))[1]


def brier_score(probs: ArrayLike, labels: ArrayLike) -> float:
    """Multiclass Brier score, mean_i Σ_k (p_ik − y_ik)², in [0, 2]."""
    P, y = _probs_labels(probs, labels)
    onehot = np.zeros_like(P)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((P - onehot) ** 2, axis=1)))


def nll(probs: ArrayLike, labels: ArrayLike) -> float:
    """Mean negative log-likelihood of the labels, −mean log p_y (p clipped at 1e-300)."""
    P, y = _probs_labels(probs, labels)
    return float(-np.mean(np.log(np.maximum(P[np.arange(len(y)), y], 1e-300))))


def calibration_report(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> CalibrationReport:
    """ECE (equal-width and equal-mass), MCE, Brier, NLL and accuracy in one call."""
    P, y = _probs_labels(probs, labels)
    uniform = reliability_diagram(P, y, n_bins, "uniform")
    ece_u, mce_u = _ece_mce(uniform)
    n_quantile = min(n_bins, len(y))
    ece_q = _ece_mce(reliability_diagram(P, y, n_quantile, "quantile"))[0]
    return CalibrationReport(
        ece=ece_u,
        ece_adaptive=ece_q,
        mce=mce_u,
        brier=brier_score(P, y),
        nll=nll(P, y),
        accuracy=float(np.mean(P.argmax(axis=1) == y)),
        mean_confidence=float(np.mean(P.max(axis=1))),
        n=len(y),
        n_bins=n_bins,
    )


# ---------------------------------------------------------- temperature scaling
def apply_temperature(logits: ArrayLike, temperature: float) -> np.ndarray:
    """Calibrated probabilities softmax(logits / T), (n, K) float64."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return softmax(as_float64(logits, "logits", ndim=2) / temperature)


def _nll_at(Z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    logp = log_softmax(Z / temperature, axis=1)  # (n, K)
    return float(-np.mean(logp[np.arange(len(y)), y]))


def fit_temperature(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    bounds: tuple[float, float] = (0.01, 100.0),
    n_bins: int = 15,
) -> TemperatureFit:
    """Fit temperature scaling (Guo et al. 2017) on *held-out* logits (n, K).

    Minimises NLL over log T in ``log(bounds)`` with bounded Brent search: NLL is convex
    in 1/T, hence unimodal in log T, so a 1-D search finds the global minimum. Fit on a
    validation split and evaluate on another, or the "after" numbers flatter it. A T at
    a bound means the optimum lies outside ``bounds``.
    """
    Z = as_float64(logits, "logits", ndim=2)  # (n, K)
    y = as_labels(labels)
    _probs_labels(softmax(Z), y)  # shape/label checks
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"bounds must satisfy 0 < low < high, got {bounds}")
    res = minimize_scalar(
        lambda log_t: _nll_at(Z, y, float(np.exp(log_t))),
        bounds=(np.log(lo), np.log(hi)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    T = float(np.exp(res.x))
    return TemperatureFit(
        temperature=T,
        nll_before=_nll_at(Z, y, 1.0),
        nll_after=_nll_at(Z, y, T),
        ece_before=ece(softmax(Z), y, n_bins),
        ece_after=ece(apply_temperature(Z, T), y, n_bins),
        n=len(y),
    )
