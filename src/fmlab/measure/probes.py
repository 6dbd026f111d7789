"""Linear probes with a control task: is a property *in* the representation, or learned
by the probe?

A linear probe (Alain & Bengio 2016) is a logistic regression trained on frozen
features to predict a label; its held-out accuracy says how linearly decodable the
label is. Hewitt & Liang 2019 ("Designing and Interpreting Probes with Control Tasks",
EMNLP) pointed out that a probe can score well by memorising word identity rather than
reading the property, and proposed a **control task**: give every word *type* a random
label, drawn independently from the real task's label distribution, so the only way to
do well on the control task is to memorise types. **Selectivity** = probe accuracy −
control accuracy (both held out); a good probe is accurate *and* selective.

If ``word_types`` is not given, every example is its own type: control labels are then
random per example and the control accuracy is essentially chance, which makes
selectivity an upper bound — pass the token/word ids when examples share types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fmlab.measure._arrays import ArrayLike, as_float64, as_labels


@dataclass(frozen=True)
class ProbeResult:
    """Held-out results of a probe and its control task.

    ``test_accuracy_ci`` and ``selectivity_ci`` are ``fmlab.stats.CI`` objects from a
    bootstrap over test examples (selectivity paired: probe and control are scored on
    the same examples). ``majority_baseline`` is the test accuracy of always predicting
    the most frequent training label.
    """

    train_accuracy: float
    test_accuracy: float
    control_train_accuracy: float
    control_test_accuracy: float
    selectivity: float
    test_accuracy_ci: Any
    selectivity_ci: Any
    majority_baseline: float
    n_train: int
    n_test: int
    n_classes: int


def control_labels(
    labels: ArrayLike, word_types: ArrayLike | None = None, *, seed: int = 0
) -> np.ndarray:
    """Hewitt & Liang control labels: one random label per word type, (n,) int64.

    Each type's label is drawn independently from the empirical label distribution of
    ``labels``, so the control task has (in expectation) the same label distribution
    as the real one but is a function of word identity only.
    """
    y = as_labels(labels)
    types = np.arange(len(y)) if word_types is None else as_labels(word_types, "word_types")
    if types.shape != y.shape:
        raise ValueError(f"word_types has shape {types.shape}, labels {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    uniq, inverse = np.unique(types, return_inverse=True)
    rng = np.random.default_rng(seed)
    per_type = rng.choice(classes, size=len(uniq), p=counts / counts.sum())  # (n_types,)
    return per_type[inverse]


def _fit_predict(
    X_train: np.ndarray, y_train: np.ndarray, X_eval: list[np.ndarray], C: float, max_iter: int
) -> list[np.ndarray]:
    """Standardise on the training split, fit multinomial logistic regression, predict."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if np.unique(y_train).size == 1:  # sklearn refuses one class; the answer is constant
        return [np.full(len(X), y_train[0]) for X in X_eval]
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    model.fit(X_train, y_train)
    return [model.predict(X) for X in X_eval]


def _split(n: int, test_size: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    n_test = round(test_size * n)
    if n_test < 1 or n - n_test < 2:
        raise ValueError(f"{n} examples are too few for test_size={test_size}")
    perm = rng.permutation(n)
    return perm[n_test:], perm[:n_test]


def linear_probe(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    word_types: ArrayLike | None = None,
    test_size: float = 0.25,
    C: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
    n_resamples: int = 2000,
    confidence: float = 0.95,
) -> ProbeResult:
    """Train a linear probe and its control-task twin; report held-out accuracy and
    selectivity (Hewitt & Liang 2019).

    features (n, d), labels (n,) class ids, word_types (n,) ids of the word/token type
    of each example (see module docstring). The train/test split (by example, as in
    Hewitt & Liang, so types recur across splits) and the control labels are drawn from
    ``seed``. ``C`` is the inverse L2 strength: a stronger penalty lowers the probe's
    capacity to memorise and usually raises selectivity.
    """
    X = as_float64(features, "features", ndim=2)
    y = as_labels(labels)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"features has {X.shape[0]} rows but labels has {y.shape[0]}")
    split_seed, control_seed, boot_seed = np.random.SeedSequence(seed).generate_state(3)
    train, test = _split(len(y), test_size, np.random.default_rng(split_seed))
    y_ctl = control_labels(y, word_types, seed=int(control_seed))

    pred_tr, pred_te = _fit_predict(X[train], y[train], [X[train], X[test]], C, max_iter)
    ctl_tr, ctl_te = _fit_predict(X[train], y_ctl[train], [X[train], X[test]], C, max_iter)
    correct = (pred_te == y[test]).astype(np.float64)  # (n_test,)
    ctl_correct = (ctl_te == y_ctl[test]).astype(np.float64)  # (n_test,)

    from fmlab.stats import bootstrap_ci  # lazy: stats is a sibling layer

    boot = {"n_resamples": n_resamples, "confidence": confidence, "seed": int(boot_seed)}
    classes, counts = np.unique(y[train], return_counts=True)
    return ProbeResult(
        train_accuracy=float(np.mean(pred_tr == y[train])),
        test_accuracy=float(correct.mean()),
        control_train_accuracy=float(np.mean(ctl_tr == y_ctl[train])),
        control_test_accuracy=float(ctl_correct.mean()),
        selectivity=float(correct.mean() - ctl_correct.mean()),
        test_accuracy_ci=bootstrap_ci(correct, np.mean, **boot),
        selectivity_ci=bootstrap_ci(correct - ctl_correct, np.mean, **boot),
        majority_baseline=float(np.mean(y[test] == classes[np.argmax(counts)])),
        n_train=len(train),
        n_test=len(test),
        n_classes=int(np.unique(y).size),
    )
