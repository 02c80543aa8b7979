"""Sample-quality metrics for generative models, computed from extractor features (numpy/scipy only)."""

from .fid import fid_from_features, frechet_distance
from .inception_score import inception_score
from .kid import (
    kernel_inception_distance,
    kid_subset_indices,
    mmd2_unbiased,
    polynomial_kernel,
)
from .prdc import knn_sq_radii, prdc
from .stats import FeatureStats, cache_key, cached_stats

__all__ = [
    "FeatureStats",
    "cache_key",
    "cached_stats",
    "fid_from_features",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
    "kid_subset_indices",
    "knn_sq_radii",
    "mmd2_unbiased",
    "polynomial_kernel",
    "prdc",
]
