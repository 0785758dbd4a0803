"""Per-pass accumulators of an evaluation, resumable and mergeable across processes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from tokenkit.errors import ConfigError
from tokenkit.evaluation.inception import InceptionFeatures
from tokenkit.evaluation.statistics import FeatureStatistics, InceptionScoreStatistics
from tokenkit.weights.io import atomic_write


class ImageSetStatistics:
    """What one image set (real, reconstructed or generated) contributes: pool / spatial statistics,
    Inception Score sums and, for KID and precision / recall, the pool features.

    Args:
        spatial: Keep spatial statistics (sFID).
        inception_score: Settings ``(split_size, eps)`` of the Inception Score sums, or ``None``.
        keep_features: Keep the ``(N, 2048)`` pool features (float32, CPU).
    """

    def __init__(self, *, spatial: bool = False, inception_score: tuple[int | None, float] | None = None,
                 keep_features: bool = False) -> None:
        self.pool = FeatureStatistics(2048)
        self.spatial: FeatureStatistics | None = None
        self.want_spatial = spatial
        self.inception_score = None if inception_score is None else InceptionScoreStatistics(1008, *inception_score)
        self.features: list[torch.Tensor] | None = [] if keep_features else None

    def add(self, out: InceptionFeatures, indices: torch.Tensor | None = None) -> None:
        """Add one batch of features (``indices``: the images' positions, for IS splits)."""
        self.pool.update(out.pool)
        if self.want_spatial:
            if self.spatial is None:
                self.spatial = FeatureStatistics(out.spatial.shape[1])
            self.spatial.update(out.spatial)
        if self.inception_score is not None:
            if out.logits is None:
                raise ConfigError("the Inception Score needs classifier weights (these Inception weights have none)")
            start = None if indices is None or (indices < 0).any() else int(indices[0])
            contiguous = start is not None and torch.equal(indices.cpu(), torch.arange(start, start + len(indices)))
            self.inception_score.update(out.logits, start if contiguous else None)
        if self.features is not None:
            self.features.append(out.pool.detach().float().cpu())

    @property
    def count(self) -> int:
        """Images added."""
        return self.pool.count

    def pool_features(self) -> torch.Tensor | None:
        """``(N, 2048)`` float32 pool features, when kept."""
        return None if self.features is None else (torch.cat(self.features) if self.features
                                                   else torch.zeros(0, 2048))

    def merge(self, other: ImageSetStatistics) -> None:
        """Add another process's (or an earlier run's) accumulators."""
        self.pool.merge(other.pool)
        if other.spatial is not None:
            if self.spatial is None:
                self.spatial = FeatureStatistics(other.spatial.dim)
            self.spatial.merge(other.spatial)
        if self.inception_score is not None and other.inception_score is not None:
            self.inception_score.merge(other.inception_score)
        if self.features is not None and other.features is not None:
            self.features.extend(other.features)

    def state_dict(self) -> dict[str, Any]:
        """Everything, for resuming."""
        return {"pool": self.pool.state_dict(), "spatial": None if self.spatial is None else self.spatial.state_dict(),
                "want_spatial": self.want_spatial,
                "inception_score": None if self.inception_score is None else self.inception_score.state_dict(),
                "features": self.pool_features()}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ImageSetStatistics:
        """Rebuild from ``state_dict``."""
        stats = cls(spatial=state["want_spatial"])
        stats.pool = FeatureStatistics.from_state_dict(state["pool"])
        stats.spatial = None if state["spatial"] is None else FeatureStatistics.from_state_dict(state["spatial"])
        if state["inception_score"] is not None:
            stats.inception_score = InceptionScoreStatistics.from_state_dict(state["inception_score"])
        stats.features = None if state["features"] is None else [state["features"]]
        return stats


@dataclasses.dataclass
class PassState:
    """The resumable state of one process's pass: accumulators, scalar sums, batches done, skipped files."""

    signature: dict[str, Any]
    sets: dict[str, ImageSetStatistics]
    sums: dict[str, float] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    code_counts: torch.Tensor | None = None
    done: set[int] = dataclasses.field(default_factory=set)
    skipped: list[str] = dataclasses.field(default_factory=list)

    def add_sum(self, name: str, values: torch.Tensor) -> None:
        """Add per-image values of a metric averaged over images (PSNR, SSIM, LPIPS)."""
        self.sums[name] = self.sums.get(name, 0.0) + float(values.double().sum())
        self.counts[name] = self.counts.get(name, 0) + int(values.numel())

    def add_codes(self, indices: torch.Tensor, codebook_size: int) -> None:
        """Add token ids to the code histogram."""
        counts = torch.bincount(indices.detach().reshape(-1).cpu(), minlength=codebook_size)
        self.code_counts = counts if self.code_counts is None else self.code_counts + counts

    def merge(self, other: PassState) -> None:
        """Add another process's state."""
        for name, stats in other.sets.items():
            self.sets[name].merge(stats)
        for name, value in other.sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
            self.counts[name] = self.counts.get(name, 0) + other.counts[name]
        if other.code_counts is not None:
            self.code_counts = other.code_counts if self.code_counts is None else self.code_counts + other.code_counts
        self.done |= other.done
        self.skipped.extend(other.skipped)

    def save(self, path: Path) -> None:
        """Write atomically (``torch.save`` of plain tensors and containers)."""
        state = {"signature": self.signature, "sets": {k: v.state_dict() for k, v in self.sets.items()},
                 "sums": self.sums, "counts": self.counts, "code_counts": self.code_counts,
                 "done": sorted(self.done), "skipped": self.skipped}
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    @classmethod
    def load(cls, path: Path, signature: dict[str, Any]) -> PassState:
        """Read a state saved by ``save``; refuse one of another evaluation (the differing settings named).

        Raises:
            ConfigError: Unreadable, or saved with other settings.
        """
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001  (any unreadable state is reported the same way)
            raise ConfigError(f"cannot read the evaluation state {path} ({err}); delete it to start again") from None
        if state["signature"] != signature:
            diff = sorted(k for k in set(state["signature"]) | set(signature)
                          if state["signature"].get(k) != signature.get(k))
            raise ConfigError(f"the evaluation state {path} belongs to another evaluation (differs in "
                              f"{', '.join(diff)}); use another --state-dir or delete it")
        return cls(signature=signature, sets={k: ImageSetStatistics.from_state_dict(v) for k, v in state["sets"].items()},
                   sums=state["sums"], counts=state["counts"], code_counts=state["code_counts"],
                   done=set(state["done"]), skipped=list(state["skipped"]))


def state_path(state_dir: str | os.PathLike, rank: int) -> Path:
    """The state file of process ``rank``."""
    return Path(state_dir) / f"eval-state-rank{rank}.pt"
