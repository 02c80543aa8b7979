import numpy as np
import pytest
import scipy.linalg
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from aigc_jax.metrics import (
    FeatureStats,
    cache_key,
    cached_stats,
    fid_from_features,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    kid_subset_indices,
    prdc,
)


def _gaussians(seed, n=500, d=16, shift=0.0, scale=1.0):
    """Draws from one fixed correlated Gaussian per d; `seed` only picks the samples."""
    mix = np.eye(d) + 0.5 * np.random.default_rng(d).normal(size=(d, d)) / np.sqrt(d)
    return (np.random.default_rng(seed).normal(size=(n, d)) @ mix) * scale + shift


def _moments(x):
    return x.mean(0), np.cov(x, rowvar=False)


def _fid_reference(mu1, sigma1, mu2, sigma2):
    """pytorch-fid's calculate_frechet_distance (sqrtm of the non-symmetric product)."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


# ---------------------------------------------------------------- FID


@pytest.mark.parametrize("seed,shift,scale", [(0, 0.0, 1.0), (1, 0.3, 1.5), (2, -1.0, 0.7)])
def test_fid_matches_sqrtm_reference(seed, shift, scale):
    m1, s1 = _moments(_gaussians(seed))
    m2, s2 = _moments(_gaussians(seed + 100, n=400, shift=shift, scale=scale))
    expected = _fid_reference(m1, s1, m2, s2)
    assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-6)


def test_fid_from_features_matches_moments():
    x, y = _gaussians(3), _gaussians(4, shift=0.5)
    assert fid_from_features(x, y) == pytest.approx(frechet_distance(*_moments(x), *_moments(y)), rel=1e-12)


def test_fid_identity_and_symmetry():
    x, y = _gaussians(5), _gaussians(6, scale=2.0, shift=1.0)
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-8)
    assert fid_from_features(x, y) == pytest.approx(fid_from_features(y, x), rel=1e-9)
    assert fid_from_features(x, y) > 1.0


def test_fid_near_singular_is_finite_and_real():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(20, 64)), rng.normal(size=(20, 64)) + 0.1
    m1, s1 = _moments(x)
    m2, s2 = _moments(y)
    value = frechet_distance(m1, s1, m2, s2)
    assert isinstance(value, float) and np.isfinite(value) and value > 0
    eps = 1e-6 * np.eye(64)
    assert value == pytest.approx(_fid_reference(m1, s1 + eps, m2, s2 + eps), rel=1e-4)
    assert frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-6 * np.trace(s1))
    s_low = np.outer(np.arange(64.0), np.arange(64.0)) * 1e-3
    assert np.isfinite(frechet_distance(m1, s_low, m2, s_low + 1e-12 * np.eye(64)))


def test_fid_bad_inputs():
    m, s = np.zeros(4), np.eye(4)
    with pytest.raises(ValueError, match="feature dims differ"):
        frechet_distance(m, s, np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="sigma1"):
        frechet_distance(m, np.eye(3), m, s)
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(m, s * np.nan, m, s)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fid_from_features(np.ones((1, 4)), np.ones((5, 4)))
    with pytest.raises(ValueError, match="feature dims differ"):
        fid_from_features(np.ones((5, 4)), np.ones((5, 3)))
    with pytest.raises(ValueError, match="empty"):
        fid_from_features(np.ones((0, 4)), np.ones((5, 4)))


# ---------------------------------------------------------------- KID


def _mmd2_loops(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_direct_estimator_on_same_subsets():
    x, y = _gaussians(10, n=60, d=8), _gaussians(11, n=50, d=8, shift=0.4)
    vals = [_mmd2_loops(x[i], y[j]) for i, j in kid_subset_indices(60, 50, 4, 15, seed=3)]
    mean, std = kernel_inception_distance(x, y, num_subsets=4, subset_size=15, seed=3)
    assert mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert std == pytest.approx(np.std(vals), rel=1e-8)


def test_kid_deterministic_and_separates_distributions():
    x, x2, y = _gaussians(12, n=800), _gaussians(13, n=800), _gaussians(14, n=800, shift=0.5)
    same = kernel_inception_distance(x, x2, num_subsets=20, subset_size=200, seed=0)
    assert same == kernel_inception_distance(x, x2, num_subsets=20, subset_size=200, seed=0)
    shifted = kernel_inception_distance(x, y, num_subsets=20, subset_size=200, seed=0)
    assert abs(same[0]) < 0.05 * shifted[0]
    assert shifted[0] > 5 * shifted[1]


def test_kid_bad_inputs():
    x = np.ones((10, 4))
    with pytest.raises(ValueError, match="subset_size=11"):
        kernel_inception_distance(x, x, subset_size=11)
    with pytest.raises(ValueError, match="feature dims differ"):
        kernel_inception_distance(x, np.ones((10, 5)), subset_size=5)
    with pytest.raises(ValueError, match="num_subsets"):
        kernel_inception_distance(x, x, num_subsets=0, subset_size=5)


# ---------------------------------------------------------------- Inception Score


def _is_reference(p, splits):
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(0)
        kls = [np.sum([pi * np.log(pi / q) for pi, q in zip(row, py) if pi > 0]) for row in part]
        scores.append(np.exp(np.mean(kls)))
    return np.mean(scores), np.std(scores)


def test_inception_score_matches_direct_formula_and_logits():
    rng = np.random.default_rng(20)
    logits = rng.normal(size=(103, 10)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    ref = _is_reference(p, 5)
    assert inception_score(p, splits=5) == pytest.approx(ref, rel=1e-10)
    assert inception_score(logits, splits=5, from_logits=True) == pytest.approx(ref, rel=1e-10)


def test_inception_score_extremes():
    assert inception_score(np.full((40, 8), 1 / 8), splits=4) == pytest.approx((1.0, 0.0), abs=1e-12)
    onehot = np.eye(8)[np.arange(40) % 8]
    assert inception_score(onehot, splits=5) == pytest.approx((8.0, 0.0), abs=1e-9)


def test_inception_score_bad_inputs():
    with pytest.raises(ValueError, match="splits=11"):
        inception_score(np.full((10, 3), 1 / 3), splits=11)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(np.ones((10, 3)), splits=2)
    with pytest.raises(ValueError, match="2-D"):
        inception_score(np.ones(10), splits=2)


# ---------------------------------------------------------------- PRDC


def _prdc_bruteforce(real, fake, k):
    real_r = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, -1]
    fake_r = NearestNeighbors(n_neighbors=k + 1).fit(fake).kneighbors(fake)[0][:, -1]
    d = pairwise_distances(real, fake)
    return {
        "precision": (d <= real_r[:, None]).any(0).mean(),
        "recall": (d <= fake_r[None, :]).any(1).mean(),
        "density": (d < real_r[:, None]).sum(0).mean() / k,
        "coverage": (d.min(1) < real_r).mean(),
    }


@pytest.mark.parametrize("k,shift", [(3, 0.0), (5, 0.7), (1, 0.2)])
def test_prdc_matches_bruteforce(k, shift):
    real, fake = _gaussians(30, n=300, d=8), _gaussians(31, n=250, d=8, shift=shift, scale=1.2)
    got = prdc(real, fake, nearest_k=k, chunk_size=64)
    ref = _prdc_bruteforce(real, fake, k)
    assert got == pytest.approx(ref, abs=1e-12)


def test_prdc_chunking_does_not_change_result():
    real, fake = _gaussians(32, n=200, d=6), _gaussians(33, n=150, d=6, shift=0.3)
    assert prdc(real, fake, chunk_size=7) == prdc(real, fake, chunk_size=10_000)


def test_prdc_identical_and_disjoint():
    x = _gaussians(34, n=400, d=8)
    assert prdc(x, x) == pytest.approx({"precision": 1, "recall": 1, "density": 1, "coverage": 1})
    same = prdc(x, _gaussians(35, n=400, d=8))
    assert same["precision"] > 0.6 and same["recall"] > 0.6
    far = prdc(x, _gaussians(36, n=400, d=8, shift=20.0))
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_prdc_bad_inputs():
    with pytest.raises(ValueError, match="nearest_k=3 needs at least 4"):
        prdc(np.ones((3, 2)), np.ones((10, 2)))
    with pytest.raises(ValueError, match="feature dims differ"):
        prdc(np.ones((10, 2)), np.ones((10, 3)))
    with pytest.raises(ValueError, match="nearest_k"):
        prdc(np.ones((10, 2)), np.ones((10, 2)), nearest_k=0)


# ---------------------------------------------------------------- streaming stats and cache


def test_feature_stats_streaming_equals_all_at_once():
    x = _gaussians(40, n=537, d=12) + 1e3
    stats = FeatureStats(max_features=50)
    for batch in np.array_split(x, [1, 17, 18, 100, 350]):
        stats.update(batch)
    assert stats.count == 537
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(stats.features, x[:50])


def test_feature_stats_merge_and_unlimited_features():
    x = _gaussians(41, n=300, d=5)
    a, b = FeatureStats(max_features=None), FeatureStats(max_features=None)
    a.update(x[:120])
    b.update(x[120:])
    a.merge(b)
    np.testing.assert_allclose(a.cov, np.cov(x, rowvar=False), rtol=1e-10)
    np.testing.assert_array_equal(a.features, x)


def test_feature_stats_bad_inputs():
    stats = FeatureStats()
    with pytest.raises(ValueError, match="empty"):
        stats.mean
    stats.update(np.ones((1, 3)))
    with pytest.raises(ValueError, match="at least 2 samples, got 1"):
        stats.cov
    with pytest.raises(ValueError, match="d=4"):
        stats.update(np.ones((2, 4)))
    with pytest.raises(ValueError, match="no raw features"):
        stats.features
    with pytest.raises(ValueError, match="max_features"):
        FeatureStats(max_features=-1)


def test_cached_stats_computes_once_per_key(tmp_path):
    calls = []
    x = _gaussians(42, n=100, d=4)

    def compute():
        calls.append(1)
        s = FeatureStats()
        s.update(x)
        return s.to_dict()

    key = {"dataset": "cifar10", "split": "train", "resolution": 32, "extractor": "inception-v3"}
    first = cached_stats(tmp_path, key, compute)
    second = cached_stats(tmp_path, dict(reversed(list(key.items()))), compute)
    assert len(calls) == 1
    for name in ("mu", "sigma", "count"):
        np.testing.assert_array_equal(first[name], second[name])
    np.testing.assert_allclose(second["sigma"], np.cov(x, rowvar=False), rtol=1e-12)

    cached_stats(tmp_path, {**key, "split": "test"}, compute)
    assert len(calls) == 2
    assert cache_key(key) != cache_key({**key, "split": "test"})
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".npz", ".npz"]


def test_cached_stats_recovers_from_corrupt_file_and_rejects_bad_keys(tmp_path):
    key = {"dataset": "x"}
    (tmp_path / f"stats_{cache_key(key)}.npz").write_bytes(b"not a zip")
    out = cached_stats(tmp_path, key, lambda: {"mu": np.zeros(3)})
    np.testing.assert_array_equal(out["mu"], np.zeros(3))
    np.testing.assert_array_equal(cached_stats(tmp_path, key, lambda: 1 / 0)["mu"], np.zeros(3))
    with pytest.raises(ValueError, match="JSON"):
        cached_stats(tmp_path, {"fn": object()}, dict)
    with pytest.raises(ValueError, match="non-empty dict"):
        cached_stats(tmp_path, {}, dict)
