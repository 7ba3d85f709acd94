"""Quality metrics of a sample set against a reference set (numpy only).

:func:`frechet_distance` is the Frechet distance between Gaussians fitted to two feature sets
(Heusel et al., NeurIPS 2017, "GANs trained by a two time-scale update rule ..."; FID when the
features are Inception's):

    FD = |mu_1 - mu_2|^2 + tr(C_1) + tr(C_2) - 2 tr((C_1^{1/2} C_2 C_1^{1/2})^{1/2}).

The matrix square roots come from symmetric eigendecompositions with negative round-off eigenvalues
set to 0, so the distance stays finite when a covariance is singular (fewer samples than feature
dimensions), where ``scipy.linalg.sqrtm(C_1 C_2)`` fails or turns complex.  With so few samples the
estimate is strongly biased upward, so :func:`frechet_distance` refuses fewer samples than feature
dimensions + 1 rather than return a number that means little.
"""

from __future__ import annotations

import numpy as np


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(features: np.ndarray, reference: np.ndarray) -> float:
    """Frechet distance between ``features`` ``(n, d)`` and ``reference`` ``(m, d)`` (see the module docstring)."""
    x = np.asarray(features, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if x.ndim != 2 or r.ndim != 2 or x.shape[1] != r.shape[1]:
        raise ValueError(f"features must be (n, d) and reference (m, d) with the same d, got {x.shape}, {r.shape}")
    for name, data in (("features", x), ("reference", r)):
        if data.shape[0] < data.shape[1] + 1:
            raise ValueError(f"{name} has {data.shape[0]} samples of dimension {data.shape[1]}: the Frechet distance "
                             f"needs at least d + 1 = {data.shape[1] + 1} samples (fewer give a singular covariance)")
    mean_gap = x.mean(axis=0) - r.mean(axis=0)
    cov_x, cov_r = np.cov(x, rowvar=False), np.cov(r, rowvar=False)
    root_x = _psd_sqrt(cov_x)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_x @ cov_r @ root_x), 0.0, None)).sum()
    return float(max(mean_gap @ mean_gap + np.trace(cov_x) + np.trace(cov_r) - 2.0 * cross, 0.0))


def bootstrap_interval(features: np.ndarray, reference: np.ndarray, n_resamples: int, confidence: float,
                       rng: np.random.Generator) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval of the population Frechet distance.

    Both sets' samples are resampled with replacement (independently) and the interval is
    ``[2 FD - q_high, 2 FD - q_low]`` (clipped at 0) with ``q`` the resamples' quantiles.  The plug-in
    :func:`frechet_distance` is biased upward (by roughly ``tr`` of the covariances over the sample size),
    and its resamples are biased by about as much again; the basic interval subtracts that offset, so it
    covers the population distance, and it lies *below* the plug-in estimate when the bias dominates (few
    samples per feature dimension).  The percentile interval would lie above it and cover neither."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples = {n_resamples} is invalid: accepted an integer >= 1")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence = {confidence} is invalid: accepted a number in (0, 1)")
    x, r = np.asarray(features), np.asarray(reference)
    estimate = frechet_distance(x, r)
    values = [frechet_distance(x[rng.integers(0, len(x), len(x))], r[rng.integers(0, len(r), len(r))])
              for _ in range(n_resamples)]
    tail = 50.0 * (1.0 - confidence)
    q_low, q_high = np.percentile(values, [tail, 100.0 - tail])
    return float(max(2.0 * estimate - q_high, 0.0)), float(max(2.0 * estimate - q_low, 0.0))
