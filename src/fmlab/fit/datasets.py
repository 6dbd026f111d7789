"""Published scaling-law data, loaded from a local copy.

The Chinchilla runs extracted by Besiroglu et al. 2024 (Epoch AI, arXiv:2404.10102) from
figure 4 of Hoffmann et al. 2022 are published at
https://github.com/epoch-research/analyzing-chinchilla (``data/svg_extracted_data.csv``,
245 runs). fmlab does not redistribute them (the repository states no license); point
:func:`load_chinchilla_epoch` at a downloaded copy, or set ``FMLAB_CHINCHILLA_EPOCH_CSV``.
If the file is placed at ``fmlab/data/chinchilla_epoch.csv`` it is found there too.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from fmlab.fit.chinchilla_law import ChinchillaParams

__all__ = [
    "CHINCHILLA_EPOCH_ENV",
    "CHINCHILLA_EPOCH_URL",
    "HOFFMANN_PARAMS",
    "load_chinchilla_epoch",
    "sample_chinchilla",
]

#: Hoffmann et al. 2022's published approach-3 estimates (their eq. 10).
HOFFMANN_PARAMS = ChinchillaParams(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

CHINCHILLA_EPOCH_ENV = "FMLAB_CHINCHILLA_EPOCH_CSV"
CHINCHILLA_EPOCH_URL = (
    "https://raw.githubusercontent.com/epoch-research/analyzing-chinchilla/main/"
    "data/svg_extracted_data.csv"
)


def _find(path: str | os.PathLike[str] | None) -> Path | None:
    if path is not None:
        return Path(path)
    if os.environ.get(CHINCHILLA_EPOCH_ENV):
        return Path(os.environ[CHINCHILLA_EPOCH_ENV])
    packaged = resources.files("fmlab").joinpath("data", "chinchilla_epoch.csv")
    return Path(str(packaged)) if packaged.is_file() else None


def load_chinchilla_epoch(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """The extracted Chinchilla runs as a table with columns ``N, D, C, loss``.

    ``N`` is the model size, ``C`` the training FLOP, ``D = C / (6 N)`` the tokens (as in
    Besiroglu et al.'s analysis). Accepts Epoch's original columns (``Model Size``,
    ``Training FLOP``, ``loss``) or ``N, C, loss``. Raises ``FileNotFoundError`` explaining
    where to get the file when no copy is found.
    """
    found = _find(path)
    if found is None or not found.is_file():
        raise FileNotFoundError(
            f"no copy of the Epoch AI Chinchilla data{f' at {found}' if found else ''}; "
            f"download {CHINCHILLA_EPOCH_URL} and pass its path or set {CHINCHILLA_EPOCH_ENV}"
        )
    raw = pd.read_csv(found)
    raw = raw.rename(columns={"Model Size": "N", "Training FLOP": "C"})
    missing = [c for c in ("N", "C", "loss") if c not in raw.columns]
    if missing:
        raise ValueError(f"{found} lacks column(s) {missing}; it has {list(raw.columns)}")
    df = raw[["N", "C", "loss"]].dropna().reset_index(drop=True)
    df.insert(1, "D", df["C"] / (6 * df["N"]))
    return df


def sample_chinchilla(
    n_points: int = 240,
    params: ChinchillaParams = HOFFMANN_PARAMS,
    *,
    noise: float = 0.02,
    seed: int = 0,
    N_range: tuple[float, float] = (7e7, 1.6e10),
    D_range: tuple[float, float] = (5e9, 5e11),
) -> pd.DataFrame:
    """Synthetic runs from a known law, for recovery and coverage checks.

    ``N`` and ``D`` are log-uniform over the Chinchilla-like ranges; the loss is the law
    times log-normal noise (``log L = log L_true + noise · ε``, ε ~ N(0, 1)), which is the
    error model the log-space Huber fit assumes. Columns ``N, D, loss``.
    """
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(*np.log(N_range), n_points))
    D = np.exp(rng.uniform(*np.log(D_range), n_points))
    loss = params.predict(N, D) * np.exp(noise * rng.standard_normal(n_points))
    return pd.DataFrame({"N": N, "D": D, "loss": loss})
