"""Frechet Inception Distance between two Gaussians fitted to features."""

from __future__ import annotations

import numpy as np

from .stats import _as_features, _check_same_dim


def _sym_sqrt_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric PSD matrix; tiny negative eigenvalues from rounding are clipped."""
    w, v = np.linalg.eigh(a)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _check_gaussian(mu, sigma, name: str) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or mu.shape[0] == 0:
        raise ValueError(f"mu{name} must be a non-empty 1-D vector, got shape {mu.shape}")
    d = mu.shape[0]
    if sigma.shape != (d, d):
        raise ValueError(f"sigma{name} must have shape ({d}, {d}) to match mu{name}, got {sigma.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError(f"mu{name}/sigma{name} contain NaN or inf")
    return mu, 0.5 * (sigma + sigma.T)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}), in float64.

    tr((S1 S2)^{1/2}) is computed as tr((S1^{1/2} S2 S1^{1/2})^{1/2}): the inner matrix
    is symmetric PSD, so two eigh calls replace scipy.linalg.sqrtm of the non-symmetric
    S1 S2, which returns complex or NaN values when the covariances are (near) singular,
    e.g. with fewer samples than feature dimensions. Rounding can make the exact-zero
    case come out as -1e-12; the result is clipped at 0 since the distance is non-negative.
    """
    mu1, sigma1 = _check_gaussian(mu1, sigma1, "1")
    mu2, sigma2 = _check_gaussian(mu2, sigma2, "2")
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dims differ: mu1 has d={mu1.shape[0]}, mu2 has d={mu2.shape[0]}")
    sqrt1 = _sym_sqrt_psd(sigma1)
    inner = sqrt1 @ sigma2 @ sqrt1
    eig = np.linalg.eigvalsh(0.5 * (inner + inner.T))
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(fid, 0.0))


def fid_from_features(feats1, feats2) -> float:
    """FID between two (n, d) feature sets, fitting mean and unbiased covariance to each."""
    x = _as_features(feats1, "feats1")
    y = _as_features(feats2, "feats2")
    _check_same_dim(x, y, "feats1", "feats2")
    for name, f in (("feats1", x), ("feats2", y)):
        if f.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 samples for a covariance, got {f.shape[0]}")
    return frechet_distance(x.mean(0), np.cov(x, rowvar=False), y.mean(0), np.cov(y, rowvar=False))
