"""Precision/recall (Kynkaanniemi et al. 2019) and density/coverage (Naeem et al. 2020).

All four use k-NN balls around samples. Pairwise distances are produced in row
chunks, so memory is O(chunk_size * n) rather than O(n^2) (10k x 10k would be 800 MB).
"""

from __future__ import annotations

import numpy as np

from .stats import _as_features, _check_int, _check_same_dim


def _sq_dists(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    return np.maximum(a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T), 0.0)


def knn_sq_radii(x: np.ndarray, k: int, chunk_size: int = 1024) -> np.ndarray:
    """Squared distance from each row to its k-th nearest other row (self counted as the 0-th)."""
    sq = np.einsum("ij,ij->i", x, x)
    radii = np.empty(x.shape[0])
    for start in range(0, x.shape[0], chunk_size):
        stop = min(start + chunk_size, x.shape[0])
        d = _sq_dists(x[start:stop], x, sq[start:stop], sq)
        d[np.arange(stop - start), np.arange(start, stop)] = 0.0
        radii[start:stop] = np.partition(d, k, axis=1)[:, k]
    return radii


def prdc(real_features, fake_features, nearest_k: int = 3, chunk_size: int = 1024) -> dict[str, float]:
    """Return {"precision", "recall", "density", "coverage"} for fake vs real features.

    precision: fraction of fakes inside some real k-NN ball (radius inclusive, as in
    Kynkaanniemi et al.); recall: fraction of reals inside some fake k-NN ball;
    density: mean number of real balls containing each fake, divided by k; coverage:
    fraction of real balls that contain at least one fake (strict, as in Naeem et al.).
    """
    real = _as_features(real_features, "real_features")
    fake = _as_features(fake_features, "fake_features")
    _check_same_dim(real, fake, "real_features", "fake_features")
    k = _check_int(nearest_k, "nearest_k")
    chunk_size = _check_int(chunk_size, "chunk_size")
    for name, f in (("real_features", real), ("fake_features", fake)):
        if f.shape[0] <= k:
            raise ValueError(f"{name} has {f.shape[0]} samples; nearest_k={k} needs at least {k + 1}")

    real_r = knn_sq_radii(real, k, chunk_size)
    fake_r = knn_sq_radii(fake, k, chunk_size)
    real_sq = np.einsum("ij,ij->i", real, real)
    fake_sq = np.einsum("ij,ij->i", fake, fake)

    fake_in_real = np.zeros(fake.shape[0], dtype=bool)
    fake_ball_count = np.zeros(fake.shape[0], dtype=np.int64)
    real_in_fake = np.empty(real.shape[0], dtype=bool)
    real_covered = np.empty(real.shape[0], dtype=bool)
    for start in range(0, real.shape[0], chunk_size):
        stop = min(start + chunk_size, real.shape[0])
        d = _sq_dists(real[start:stop], fake, real_sq[start:stop], fake_sq)
        r = real_r[start:stop, None]
        fake_in_real |= (d <= r).any(axis=0)
        fake_ball_count += (d < r).sum(axis=0)
        real_in_fake[start:stop] = (d <= fake_r[None, :]).any(axis=1)
        real_covered[start:stop] = d.min(axis=1) < real_r[start:stop]

    return {
        "precision": float(fake_in_real.mean()),
        "recall": float(real_in_fake.mean()),
        "density": float(fake_ball_count.mean() / k),
        "coverage": float(real_covered.mean()),
    }
