"""The metric arithmetic of tokenkit.evaluation against closed forms and brute-force computations."""

import numpy as np
import pytest
import torch

from tokenkit.evaluation.scores import frechet_distance, kernel_inception_distance, precision_recall
from tokenkit.evaluation.statistics import FeatureStatistics, InceptionScoreStatistics


def _spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def _sqrt_psd(m):
    w, v = np.linalg.eigh((m + m.T) / 2)
    w = np.where(w > 1e-10 * w.max(), w, 0.0)  # rounding noise of a rank-deficient matrix -> 0
    return (v * np.sqrt(w)) @ v.T


def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    mu1, mu2 = rng.standard_normal(16), rng.standard_normal(16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance((mu1, np.diag(a)), (mu2, np.diag(b))) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_of_general_gaussians_matches_the_symmetric_form():
    rng = np.random.default_rng(1)
    s1, s2 = _spd(rng, 24), _spd(rng, 24)
    mu1, mu2 = rng.standard_normal(24), rng.standard_normal(24)
    r = _sqrt_psd(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(_sqrt_psd(r @ s2 @ r))
    assert frechet_distance((mu1, s1), (mu2, s2)) == pytest.approx(expected, rel=1e-9)


def test_small_sets_use_the_exact_low_rank_trace():
    rng = np.random.default_rng(2)
    rows = torch.from_numpy(rng.standard_normal((7, 40)))
    small = FeatureStatistics(40)
    small.update(rows)
    # a set against itself: 0 up to rounding (sqrtm of the rank-6 product would leave noise)
    assert abs(frechet_distance(small, small)) < 1e-9
    # against a full-rank Gaussian: the same as the symmetric form computed densely
    s2, mu2 = _spd(rng, 40), rng.standard_normal(40)
    mu1, s1 = small.to_numpy()
    r = _sqrt_psd(s1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(_sqrt_psd(r @ s2 @ r))
    assert frechet_distance(small, (mu2, s2)) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance((mu2, s2), small) == pytest.approx(expected, rel=1e-8)


def test_streaming_statistics_equal_the_in_memory_ones():
    rng = np.random.default_rng(3)
    features = rng.standard_normal((1000, 64)).astype(np.float32) * 3 + 1
    stats = FeatureStatistics(64)
    for start in range(0, 1000, 37):
        stats.update(torch.from_numpy(features[start:start + 37]))
    assert stats.count == 1000 and stats.rows is None  # rows dropped beyond keep_rows = D
    np.testing.assert_allclose(stats.mean.numpy(), features.astype(np.float64).mean(0), atol=1e-6)
    np.testing.assert_allclose(stats.covariance.numpy(), np.cov(features.astype(np.float64), rowvar=False),
                               atol=1e-6)
    # two processes' halves merged = one pass; and a saved state resumes
    first, second = FeatureStatistics(64), FeatureStatistics(64)
    first.update(torch.from_numpy(features[:400]))
    second.update(torch.from_numpy(features[400:]))
    first.merge(FeatureStatistics.from_state_dict(second.state_dict()))
    np.testing.assert_allclose(first.covariance.numpy(), stats.covariance.numpy(), atol=1e-9)


def test_statistics_refuse_non_finite_features():
    with pytest.raises(ValueError, match="NaN or Inf"):
        FeatureStatistics(2).update(torch.tensor([[0.0, float("nan")]]))


def test_inception_score_on_hand_made_predictions():
    k = 5
    confident = torch.eye(k) * 60  # each image sure of its own class, classes balanced: IS = k
    stats = InceptionScoreStatistics(num_classes=k, eps=0.0)
    stats.update(confident)
    assert stats.score()[0] == pytest.approx(k, rel=1e-6)
    same = InceptionScoreStatistics(num_classes=k, eps=0.0)  # all the same prediction: IS = 1
    same.update(torch.tensor([[3.0, 1.0, 0.0, 0.0, 0.0]]).repeat(4, 1))
    assert same.score()[0] == pytest.approx(1.0, abs=1e-7)  # float32 softmax, as ADM
    # two images, two classes, p = (0.9, 0.1) and (0.1, 0.9): KL of each to the mean (0.5, 0.5)
    logit = float(np.log(9.0))
    two = InceptionScoreStatistics(num_classes=2, eps=0.0)
    two.update(torch.tensor([[logit, 0.0], [0.0, logit]], dtype=torch.float64))
    kl = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    assert two.score()[0] == pytest.approx(np.exp(kl), rel=1e-12)


def test_inception_score_splits_follow_adms_code():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((23, 7)) * 2
    preds = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []  # guided-diffusion evaluations/evaluator.py compute_inception_score, split_size 5
    for i in range(0, len(preds), 5):
        part = preds[i:i + 5]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        scores.append(np.exp(np.mean(np.sum(kl, 1))))
    stats = InceptionScoreStatistics(num_classes=7, split_size=5, eps=0.0)
    order = rng.permutation(23)  # images may arrive in any order, split by their index
    for i in order:
        stats.update(torch.from_numpy(logits[i:i + 1]), start=int(i))
    mean, std = stats.score()
    assert mean == pytest.approx(float(np.mean(scores)), rel=1e-10)
    assert std == pytest.approx(float(np.std(scores)), rel=1e-8)


def test_inception_score_with_the_official_eps_matches_its_formula():
    rng = np.random.default_rng(5)
    logits = torch.from_numpy(rng.standard_normal((9, 11)))
    p = torch.softmax(logits, -1)
    eps = 1e-16  # evaluator/evaluator.py: update() and result()
    prob_total, kl_total = p.sum(0), (p * torch.log(p + eps)).sum(0)
    mean = prob_total / 9
    expected = torch.exp(torch.sum(kl_total - prob_total * torch.log(mean + eps)) / 9).item()
    stats = InceptionScoreStatistics(num_classes=11, eps=eps)
    stats.update(logits[:4])
    stats.update(logits[4:])
    assert stats.score() == (pytest.approx(expected, rel=1e-12), 0.0)


def _mmd_brute_force(x, y):
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_a_brute_force_unbiased_mmd():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.7
    mean, std, size = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=3, subset_size=12)
    assert size == 12 and std == pytest.approx(0.0, abs=1e-12)  # a full subset is a permutation: same MMD
    assert mean == pytest.approx(_mmd_brute_force(x, y), rel=1e-10)
    _, _, lowered = kernel_inception_distance(torch.from_numpy(x), torch.from_numpy(y[:5]), subsets=2)
    assert lowered == 5


def test_precision_and_recall_on_constructed_point_clouds():
    rng = np.random.default_rng(7)
    cluster = torch.from_numpy(rng.standard_normal((40, 8))).float()
    far = cluster[:20] + 100.0
    # samples: 20 of the reference points exactly plus 20 far away -> precision 0.5;
    # every reference point is inside the ball of some sample only where a sample sits on it
    samples = torch.cat([cluster[:20], far])
    precision, recall = precision_recall(cluster, samples, k=3)
    assert precision == pytest.approx(0.5)
    assert 0.5 <= recall <= 1.0
    precision, recall = precision_recall(cluster, cluster.clone(), k=3)
    assert (precision, recall) == (1.0, 1.0)
    precision, recall = precision_recall(cluster, cluster + 100.0, k=3)
    assert (precision, recall) == (0.0, 0.0)


def test_precision_recall_needs_more_points_than_neighbours():
    from tokenkit.errors import ConfigError

    with pytest.raises(ConfigError, match="needs more than 3 images"):
        precision_recall(torch.zeros(3, 2), torch.zeros(10, 2), k=3)
