"""Codebook diagnostics shared by the discrete quantizers."""

from __future__ import annotations

import torch


def codebook_stats(indices: torch.Tensor, codebook_size: int) -> dict[str, torch.Tensor]:
    """Usage and perplexity of the codes in a batch.

    Args:
        indices: Integer ids of any shape.
        codebook_size: ``K``.

    Returns:
        ``usage``: fraction of the ``K`` codes that occur; ``perplexity``:
        ``exp(entropy)`` of the batch histogram (``K`` when uniform, 1 when collapsed).
    """
    return counts_stats(torch.bincount(indices.detach().reshape(-1), minlength=codebook_size))


def counts_stats(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """[`codebook_stats`][tokenkit.quantizers.stats.codebook_stats] from a code histogram ``(K,)``
    (accumulated over many batches)."""
    counts = counts.float()
    probs = counts / counts.sum().clamp_min(1.0)
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}
