"""Inception Score (Salimans et al. 2016)."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, xlogy

from .stats import _check_int


def inception_score(preds, splits: int = 10, from_logits: bool = False) -> tuple[float, float]:
    """(mean, std) over `splits` of exp(E_x KL(p(y|x) || p(y))).

    `preds` is (n, num_classes) class probabilities, or logits with from_logits=True
    (converted with a stable log-softmax). Samples are divided with np.array_split,
    so no sample is dropped when n is not a multiple of `splits`.
    """
    p = np.asarray(preds, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ValueError(f"preds must be a non-empty 2-D (n, num_classes) array, got shape {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("preds contains NaN or inf")
    splits = _check_int(splits, "splits")
    if splits > p.shape[0]:
        raise ValueError(f"splits={splits} exceeds the number of samples {p.shape[0]}")
    if from_logits:
        p = np.exp(log_softmax(p, axis=1))
    else:
        if p.min() < 0:
            raise ValueError(f"probabilities must be non-negative, got min {p.min():.3g}")
        worst = np.abs(p.sum(axis=1) - 1.0).max()
        if worst > 1e-3:
            raise ValueError(f"probability rows must sum to 1 (max deviation {worst:.3g}); "
                             "pass from_logits=True for logits")
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (xlogy(part, part) - xlogy(part, py)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    scores = np.array(scores)
    return float(scores.mean()), float(scores.std())
