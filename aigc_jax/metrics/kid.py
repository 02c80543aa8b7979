"""Kernel Inception Distance (Binkowski et al. 2018)."""

from __future__ import annotations

import numpy as np

from .stats import _as_features, _check_int, _check_same_dim


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x.y / d + 1)^3, the kernel KID is defined with."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def kid_subset_indices(n1: int, n2: int, num_subsets: int, subset_size: int, seed: int = 0):
    """Yield (idx1, idx2) per subset, drawn without replacement; fixed by `seed` so runs are comparable."""
    rng = np.random.default_rng(seed)
    for _ in range(num_subsets):
        yield (rng.choice(n1, subset_size, replace=False), rng.choice(n2, subset_size, replace=False))


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2: off-diagonal means of k(x,x) and k(y,y) minus twice the mean of k(x,y)."""
    m = x.shape[0]
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.mean())


def kernel_inception_distance(
    feats1, feats2, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID as (mean, std) of the unbiased MMD^2 over random equal-size subsets.

    Subsets keep the O(m^2) kernel matrices small and the spread across them gives
    an error bar; the estimator is unbiased, so it can be slightly negative.
    """
    x = _as_features(feats1, "feats1")
    y = _as_features(feats2, "feats2")
    _check_same_dim(x, y, "feats1", "feats2")
    num_subsets = _check_int(num_subsets, "num_subsets")
    subset_size = _check_int(subset_size, "subset_size", minimum=2)
    smallest = min(x.shape[0], y.shape[0])
    if subset_size > smallest:
        raise ValueError(f"subset_size={subset_size} exceeds the sample count {smallest} (min of both sets)")
    values = np.array(
        [
            mmd2_unbiased(x[i], y[j])
            for i, j in kid_subset_indices(x.shape[0], y.shape[0], num_subsets, subset_size, seed)
        ]
    )
    return float(values.mean()), float(values.std())
