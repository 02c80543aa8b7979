"""Streaming feature statistics and an on-disk cache for reference-set statistics.

Also holds the input checks shared by the metric modules, so every metric
rejects bad features with the same one-line ValueError.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Mapping

import numpy as np

from aigc_jax.core import files

_KEY_FIELD = "__cache_key__"


def _as_features(x, name: str) -> np.ndarray:
    """Return `x` as a finite float64 (n, d) array or raise a one-line ValueError."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _check_same_dim(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"feature dims differ: {name_a} has d={a.shape[1]}, {name_b} has d={b.shape[1]}"
        )


def _check_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class FeatureStats:
    """Accumulates mean/covariance over batches so the full feature set never has to fit in memory.

    Batches are merged with Chan et al.'s pairwise update in float64, which matches
    the all-at-once result to rounding error even when the mean is large relative to
    the spread (where the naive sum-of-outer-products formula loses digits).
    Up to `max_features` raw rows are kept as well, for metrics that need samples
    (KID, precision/recall); `max_features=None` keeps every row.
    """

    def __init__(self, max_features: int | None = 0):
        if max_features is not None:
            _check_int(max_features, "max_features", minimum=0)
        self.max_features = max_features
        self.count = 0
        self.dim: int | None = None
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None
        self._kept: list[np.ndarray] = []
        self._num_kept = 0

    def update(self, batch) -> None:
        x = _as_features(batch, "batch")
        if self.dim is None:
            self.dim = x.shape[1]
        elif x.shape[1] != self.dim:
            raise ValueError(f"batch has d={x.shape[1]} but earlier batches had d={self.dim}")
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)
        centered = x - mean_b
        self._combine(n_b, mean_b, centered.T @ centered)
        self._keep(np.asarray(batch))

    def merge(self, other: "FeatureStats") -> None:
        """Fold in statistics gathered elsewhere (another host or data shard)."""
        if other.count == 0:
            return
        if self.dim is not None and other.dim != self.dim:
            raise ValueError(f"cannot merge stats with d={other.dim} into stats with d={self.dim}")
        self.dim = other.dim
        self._combine(other.count, other._mean, other._m2)
        for rows in other._kept:
            self._keep(rows)

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        if self.count == 0:
            self.count, self._mean, self._m2 = n_b, mean_b.copy(), m2_b.copy()
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def _keep(self, rows: np.ndarray) -> None:
        room = rows.shape[0] if self.max_features is None else self.max_features - self._num_kept
        if room <= 0:
            return
        taken = np.array(rows[:room], copy=True)
        self._kept.append(taken)
        self._num_kept += taken.shape[0]

    @property
    def mean(self) -> np.ndarray:
        if self.count == 0:
            raise ValueError("FeatureStats is empty: no batches were added")
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        """Unbiased covariance (ddof=1), the same convention as np.cov."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, got {self.count}")
        return self._m2 / (self.count - 1)

    @property
    def features(self) -> np.ndarray:
        if self._num_kept == 0:
            raise ValueError("no raw features kept: max_features was 0 or no batches were added")
        return np.concatenate(self._kept, axis=0)

    def to_dict(self) -> dict[str, np.ndarray]:
        """Arrays suitable for `cached_stats` / np.savez."""
        out = {"count": np.asarray(self.count), "mu": self.mean, "sigma": self.cov}
        if self._num_kept:
            out["features"] = self.features
        return out


def _key_json(key_parts: Mapping) -> str:
    if not isinstance(key_parts, Mapping) or not key_parts:
        raise ValueError(f"key_parts must be a non-empty dict, got {key_parts!r}")
    try:
        return json.dumps(key_parts, sort_keys=True, separators=(",", ":"))
    except TypeError as err:
        raise ValueError(f"key_parts must be JSON-serialisable: {err}") from None


def cache_key(key_parts: Mapping) -> str:
    """Stable hex digest of a JSON-serialisable key dict (independent of insertion order)."""
    return hashlib.sha256(_key_json(key_parts).encode("utf-8")).hexdigest()[:32]


def _load(path: str, key_json: str) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if _KEY_FIELD not in data.files or str(data[_KEY_FIELD]) != key_json:
                return None
            return {k: data[k] for k in data.files if k != _KEY_FIELD}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def cached_stats(
    cache_dir: str | os.PathLike,
    key_parts: Mapping,
    compute_fn: Callable[[], Mapping[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Return the arrays for `key_parts`, calling `compute_fn` only on a cache miss.

    Real-data statistics (e.g. Inception mu/sigma of a dataset split) are costly and
    never change, so they are stored as `<cache_dir>/stats_<hash>.npz`. The file is
    written whole or not at all (`files.write_atomic`), so a crashed or concurrent writer
    never leaves a truncated cache behind. The full key is stored in the file and checked
    on load; an unreadable or mismatched file is recomputed.
    """
    key_json = _key_json(key_parts)
    digest = cache_key(key_parts)
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(os.fspath(cache_dir), f"stats_{digest}.npz")

    if os.path.exists(path):
        loaded = _load(path, key_json)
        if loaded is not None:
            return loaded

    result = compute_fn()
    if not isinstance(result, Mapping) or not result:
        raise ValueError(f"compute_fn must return a non-empty dict of arrays, got {type(result).__name__}")
    if _KEY_FIELD in result:
        raise ValueError(f"compute_fn result may not use the reserved name {_KEY_FIELD!r}")
    arrays = {str(k): np.asarray(v) for k, v in result.items()}
    for name, arr in arrays.items():
        if arr.dtype == object:
            raise ValueError(f"compute_fn result {name!r} is not a numeric array")

    files.write_atomic(path, lambda f: np.savez(f, **arrays, **{_KEY_FIELD: np.asarray(key_json)}))
    return arrays
