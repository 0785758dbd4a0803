"""Distances between feature distributions: FID / sFID, KID, precision and recall.

* Fréchet distance (Heusel et al. 2017): ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)``.
  With more images than feature dimensions the trace of the matrix square root
  is taken as the official TiTok evaluator (``evaluator/evaluator.py``) and
  ADM's suite (``evaluations/evaluator.py``) take it, ``scipy.linalg.sqrtm`` of
  the ``D x D`` product, ADM's ``1e-6`` diagonal offset if that is not finite.
  With at most ``D`` images of one set (its covariance is rank-deficient) it is
  computed exactly from the ``n x n`` matrix ``X S2 X^T / (n - 1)`` of the
  centred rows ``X`` of that set: sqrtm's rounding noise on the near-zero
  eigenvalues (``3e-4`` on the six bundled images) would otherwise dominate, and
  a set compared with itself gives 0 up to rounding.
* KID (Bińkowski et al. 2018): torch-fidelity's unbiased MMD with the cubic
  polynomial kernel, averaged over random subsets.
* Precision / recall (Kynkäänniemi et al. 2019): k-nearest-neighbour manifolds
  (k = 3) as ADM's ``ManifoldEstimator``, computed by torch-fidelity.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from tokenkit.errors import ConfigError
from tokenkit.evaluation.statistics import FeatureStatistics


def _trace_sqrt_product_lowrank(rows: np.ndarray, sigma_other: np.ndarray) -> float:
    """``tr sqrt(S1 S2)`` with ``S1 = X^T X / (n - 1)`` given the rows: eigenvalues of ``X S2 X^T / (n - 1)``."""
    x = rows - rows.mean(axis=0)
    small = (x @ sigma_other @ x.T) / (len(rows) - 1)
    eigenvalues = np.linalg.eigvalsh((small + small.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2)  # without `disp` (deprecated in scipy 1.16): just the matrix
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular covariance product; adding {eps} to the diagonals (as ADM's evaluator)",
                      RuntimeWarning, stacklevel=3)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrt(S1 S2)")
        covmean = covmean.real
    return float(np.trace(covmean))


def warn_if_few(count: int, dim: int, what: str = "FID") -> None:
    """Warn that a Fréchet distance from ``count <= dim`` images is biased (and which way)."""
    if count <= dim:
        warnings.warn(
            f"{what} from {count} images with {dim}-dimensional features: the covariance is rank-deficient and "
            f"{what} is strongly biased upward at this size (Chong & Forsyth 2020); compare numbers only at equal "
            "image counts, and use 50,000 images for the published protocol", UserWarning, stacklevel=3)


def frechet_distance(stats1: FeatureStatistics | tuple[np.ndarray, np.ndarray],
                     stats2: FeatureStatistics | tuple[np.ndarray, np.ndarray], *, eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians fitted to features.

    Args:
        stats1: [`FeatureStatistics`][tokenkit.evaluation.statistics.FeatureStatistics] or ``(mu, sigma)``.
        stats2: Same, e.g. the reference statistics.
        eps: ADM's diagonal offset when the product's square root is not finite.

    Returns:
        The distance (float; 0 for a set compared with itself).

    Examples:
        >>> import numpy as np
        >>> from tokenkit.evaluation.scores import frechet_distance
        >>> mu, sigma = np.zeros(2), np.eye(2)
        >>> round(frechet_distance((mu, sigma), (mu + 1, 4 * np.eye(2))), 6)   # 2 + (1 + 4 - 2*2) * 2
        4.0
    """
    def parts(stats):
        if isinstance(stats, FeatureStatistics):
            mu, sigma = stats.to_numpy()
            rows = stats.rows
            return mu, sigma, None if rows is None else rows.numpy()
        mu, sigma = stats
        return np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64), None

    mu1, sigma1, rows1 = parts(stats1)
    mu2, sigma2, rows2 = parts(stats2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ConfigError(f"cannot compare statistics of shapes {mu1.shape}/{sigma1.shape} and "
                          f"{mu2.shape}/{sigma2.shape} (different feature layers?)")
    diff = mu1 - mu2
    if rows1 is not None and (rows2 is None or len(rows1) <= len(rows2)):
        tr_covmean = _trace_sqrt_product_lowrank(rows1, sigma2)
    elif rows2 is not None:
        tr_covmean = _trace_sqrt_product_lowrank(rows2, sigma1)
    else:
        tr_covmean = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def kernel_inception_distance(features1: torch.Tensor, features2: torch.Tensor, *, subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """KID: mean and std of the unbiased MMD² (cubic polynomial kernel) over random subsets.

    Uses torch-fidelity's ``kid_features_to_metric`` (kernel ``(x.y / D + 1)^3``).

    Args:
        features1: ``(N1, D)`` features.
        features2: ``(N2, D)`` features.
        subsets: Number of random subsets.
        subset_size: Images per subset, lowered to ``min(N1, N2)`` when there are fewer.
        seed: Seed of the subset draws.

    Returns:
        ``(mean, std, subset_size_used)``.
    """
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise ConfigError(f"KID needs at least 2 images in each set, got {len(features1)} and {len(features2)}")
    out = kid_features_to_metric(features1.double().cpu(), features2.double().cpu(), kid_subsets=subsets,
                                 kid_subset_size=size, kid_kernel="poly", kid_kernel_poly_degree=3,
                                 kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN]), float(out[KEY_METRIC_KID_STD]), size


def precision_recall(reference: torch.Tensor, samples: torch.Tensor, *, k: int = 3,
                     batch_size: int = 10000) -> tuple[float, float]:
    """Improved precision and recall with ``k``-NN manifolds (ADM: k = 3).

    Precision: the fraction of ``samples`` inside some reference image's ball (radius =
    distance to its ``k``-th nearest other reference image); recall: the fraction of
    ``reference`` inside some sample's ball. Computed by torch-fidelity in float32
    (ADM's TensorFlow code takes the distances in float16 on its GPU).

    Returns:
        ``(precision, recall)``.
    """
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    if len(reference) <= k or len(samples) <= k:
        raise ConfigError(f"precision/recall with k={k} needs more than {k} images per set, "
                          f"got {len(reference)} reference and {len(samples)} samples")
    precision, recall = calculate_precision_recall_part(samples.float().cpu(), reference.float().cpu(),
                                                        neighborhood=k, batch_size=batch_size)
    return float(precision), float(recall)
