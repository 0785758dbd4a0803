"""Streaming statistics in float64: feature mean / covariance (FID, sFID) and Inception Score sums.

Images are never kept: a pass over 50,000 images keeps a ``D``-vector and a
``D x D`` matrix of sums (plus, while there are at most ``D`` images, the
feature rows themselves, which make the Fréchet distance of small sets exact,
see [`frechet_distance`][tokenkit.evaluation.scores.frechet_distance]). Sums
from several processes add up (``merge`` / ``all_reduce``), so the result does
not depend on how the images were split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tokenkit.errors import ConfigError


class FeatureStatistics:
    """Running mean and covariance of feature vectors, in float64.

    The covariance is the unbiased one (``N - 1``), computed from the sum and
    the sum of outer products as the official TiTok evaluator does
    (``evaluator.py`` ``get_covariance``), equal to ``np.cov(features, rowvar=False)``.

    Args:
        dim: Feature dimension ``D``.
        keep_rows: Keep the feature rows while there are at most this many (default ``D``).

    Examples:
        >>> import torch
        >>> from tokenkit.evaluation.statistics import FeatureStatistics
        >>> stats = FeatureStatistics(3)
        >>> stats.update(torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]]))
        >>> stats.count, stats.mean.tolist()
        (2, [1.0, 1.0, 1.0])
        >>> stats.covariance[0].tolist()
        [2.0, 0.0, -2.0]
    """

    def __init__(self, dim: int, keep_rows: int | None = None) -> None:
        self.dim = int(dim)
        self.keep_rows = self.dim if keep_rows is None else int(keep_rows)
        self.count = 0
        self.total = torch.zeros(self.dim, dtype=torch.float64)
        self.outer = torch.zeros(self.dim, self.dim, dtype=torch.float64)
        self._rows: list[torch.Tensor] | None = []

    def update(self, features: torch.Tensor) -> None:
        """Add ``(B, D)`` features (any float dtype, any device; summed in float64)."""
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must be (B, {self.dim}), got {tuple(features.shape)}")
        if not torch.isfinite(features).all():
            raise ValueError("features contain NaN or Inf")
        f = features.detach().to(torch.float64)
        if self.total.device != f.device:
            self.total, self.outer = self.total.to(f.device), self.outer.to(f.device)
        self.total += f.sum(dim=0)
        self.outer += f.T @ f
        self.count += f.shape[0]
        if self._rows is not None:
            self._rows.append(f.cpu())
            if self.count > self.keep_rows:
                self._rows = None

    def merge(self, other: FeatureStatistics) -> None:
        """Add another accumulator's sums (e.g. another process's)."""
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        self.total = self.total + other.total.to(self.total.device)
        self.outer = self.outer + other.outer.to(self.outer.device)
        self.count += other.count
        if self._rows is not None and other._rows is not None and self.count <= self.keep_rows:
            self._rows.extend(other._rows)
        else:
            self._rows = None

    @property
    def rows(self) -> torch.Tensor | None:
        """``(N, D)`` float64 feature rows while ``N <= keep_rows``, else ``None``."""
        if self._rows is None or not self._rows:
            return None
        return torch.cat(self._rows)

    @property
    def mean(self) -> torch.Tensor:
        """``(D,)`` float64 mean."""
        self._need(1)
        return (self.total / self.count).cpu()

    @property
    def covariance(self) -> torch.Tensor:
        """``(D, D)`` float64 unbiased covariance."""
        self._need(2)
        n = self.count
        return ((self.outer - torch.outer(self.total, self.total) / n) / (n - 1)).cpu()

    def _need(self, n: int) -> None:
        if self.count < n:
            raise ConfigError(f"statistics need at least {n} feature vector(s), got {self.count}")

    def to_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, sigma)`` as float64 numpy arrays."""
        return self.mean.numpy(), self.covariance.numpy()

    def state_dict(self) -> dict[str, Any]:
        """Sums and count (and the rows while kept), for resuming a pass."""
        rows = self.rows
        return {"dim": self.dim, "keep_rows": self.keep_rows, "count": self.count, "total": self.total.cpu(),
                "outer": self.outer.cpu(), "rows": rows if self._rows is not None else None}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> FeatureStatistics:
        """Rebuild an accumulator saved with ``state_dict``."""
        stats = cls(int(state["dim"]), int(state["keep_rows"]))
        stats.count = int(state["count"])
        stats.total, stats.outer = state["total"].to(torch.float64), state["outer"].to(torch.float64)
        rows = state.get("rows")
        stats._rows = None if rows is None and stats.count > 0 else ([] if rows is None else [rows.to(torch.float64)])
        return stats


class InceptionScoreStatistics:
    """Sums for the Inception Score over splits, streamed.

    For each split ``s`` it keeps ``sum_i p_i`` (``(K,)``), ``sum_i sum_j p_ij log(p_ij + eps)``
    and the count, so that ``KL_s = (sum p log(p + eps) - sum_j (sum_i p_ij) log(mean_j + eps)) / n_s``
    and ``IS = mean_s exp(KL_s)``. With ``split_size=None`` all images form one split (the
    official TiTok evaluator, eps ``1e-16``); ADM's suite uses consecutive splits of
    5,000 images and eps 0 (then ``0 log 0`` counts as 0). An image's split is its
    index in the evaluation order, so several processes can each add their images.

    Args:
        num_classes: ``K`` (1008 for the FID Inception).
        split_size: Images per split, or ``None`` for one split.
        eps: Added inside the logarithms.

    Examples:
        >>> import torch
        >>> from tokenkit.evaluation.statistics import InceptionScoreStatistics
        >>> stats = InceptionScoreStatistics(num_classes=4, eps=0.0)
        >>> stats.update(torch.eye(4) * 50)   # four confident predictions of four classes
        >>> round(stats.score()[0], 3)
        4.0
    """

    def __init__(self, num_classes: int = 1008, split_size: int | None = None, eps: float = 1e-16) -> None:
        if split_size is not None and split_size < 1:
            raise ValueError(f"split_size must be positive or None, got {split_size}")
        self.num_classes = int(num_classes)
        self.split_size = split_size
        self.eps = float(eps)
        self.prob_sum: dict[int, torch.Tensor] = {}
        self.plogp_sum: dict[int, float] = {}
        self.counts: dict[int, int] = {}
        self.seen = 0

    def update(self, logits: torch.Tensor, start: int | None = None) -> None:
        """Add ``(B, K)`` logits of the images with indices ``start .. start + B - 1``.

        ``start`` defaults to the number of images added so far (one process, in order).
        """
        if logits.ndim != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be (B, {self.num_classes}), got {tuple(logits.shape)}")
        start = self.seen if start is None else int(start)
        p = torch.softmax(logits.detach(), dim=-1)
        plogp = torch.xlogy(p, p) if self.eps == 0 else p * torch.log(p + self.eps)
        plogp = plogp.to(torch.float64).sum(dim=1).cpu()
        p = p.to(torch.float64).cpu()
        index = torch.arange(start, start + p.shape[0])
        split = torch.zeros_like(index) if self.split_size is None else index // self.split_size
        for s in split.unique().tolist():
            rows = split == s
            self.prob_sum[s] = self.prob_sum.get(s, torch.zeros(self.num_classes, dtype=torch.float64)) + p[rows].sum(0)
            self.plogp_sum[s] = self.plogp_sum.get(s, 0.0) + float(plogp[rows].sum())
            self.counts[s] = self.counts.get(s, 0) + int(rows.sum())
        self.seen = max(self.seen, start + p.shape[0])

    def merge(self, other: InceptionScoreStatistics) -> None:
        """Add another accumulator's sums (same settings)."""
        if (other.num_classes, other.split_size, other.eps) != (self.num_classes, self.split_size, self.eps):
            raise ValueError("cannot merge Inception Score statistics with different settings")
        for s, count in other.counts.items():
            self.prob_sum[s] = self.prob_sum.get(s, torch.zeros(self.num_classes, dtype=torch.float64)) + other.prob_sum[s]
            self.plogp_sum[s] = self.plogp_sum.get(s, 0.0) + other.plogp_sum[s]
            self.counts[s] = self.counts.get(s, 0) + count
        self.seen = max(self.seen, other.seen)

    @property
    def count(self) -> int:
        """Images added."""
        return sum(self.counts.values())

    def score(self) -> tuple[float, float]:
        """``(mean, std)`` of ``exp(KL_s)`` over the splits (std 0 for one split)."""
        if not self.counts:
            raise ConfigError("the Inception Score needs at least one image")
        scores = []
        for s in sorted(self.counts):
            n, total = self.counts[s], self.prob_sum[s]
            mean = total / n
            log_mean = torch.xlogy(torch.ones_like(mean), mean) if self.eps == 0 else torch.log(mean + self.eps)
            excess = torch.where(total > 0, total * log_mean, torch.zeros_like(total)).sum()
            scores.append(float(torch.exp((self.plogp_sum[s] - excess) / n)))
        return float(np.mean(scores)), float(np.std(scores))

    def state_dict(self) -> dict[str, Any]:
        """Settings and sums, for resuming a pass."""
        return {"num_classes": self.num_classes, "split_size": self.split_size, "eps": self.eps, "seen": self.seen,
                "prob_sum": dict(self.prob_sum), "plogp_sum": dict(self.plogp_sum), "counts": dict(self.counts)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> InceptionScoreStatistics:
        """Rebuild an accumulator saved with ``state_dict``."""
        stats = cls(state["num_classes"], state["split_size"], state["eps"])
        stats.prob_sum = {int(k): v for k, v in state["prob_sum"].items()}
        stats.plogp_sum = {int(k): float(v) for k, v in state["plogp_sum"].items()}
        stats.counts = {int(k): int(v) for k, v in state["counts"].items()}
        stats.seen = int(state["seen"])
        return stats
