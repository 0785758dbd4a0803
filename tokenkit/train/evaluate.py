"""Held-out evaluation: one pass over evaluation data, metrics averaged per item.

Tokenizers report PSNR, SSIM (and LPIPS with ``lpips=True``) of their
reconstructions plus codebook usage and perplexity over all token ids of the
pass; TiTok stage 1 adds the proxy-code accuracy; generators report the
masked-token cross-entropy and accuracy under fixed masks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from tokenkit.errors import ConfigError
from tokenkit.train.data import as_batch
from tokenkit.train.objectives import Objective


def batches_once(data: Any, batch_size: int, *, num_workers: int = 0) -> Iterator[dict[str, Any]]:
    """Every item of ``data`` once, in order, in batches (the last may be smaller).

    A dataset with ``eval()``/``train()`` (the augmenting datasets) is read in eval mode
    (centre crops, no flips) and put back in its previous mode afterwards.
    """
    if isinstance(data, torch.Tensor):
        for start in range(0, len(data), batch_size):
            yield {"image": data[start : start + batch_size]}
        return
    was_training = getattr(data, "training", None)
    if hasattr(data, "eval"):
        data.eval()
    try:
        yield from DataLoader(data, batch_size=batch_size, num_workers=num_workers, collate_fn=as_batch,
                              generator=torch.Generator().manual_seed(0))  # leaves the global random state
    finally:
        if was_training is not None:
            data.train(was_training)


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, data: Any, *, batch_size: int = 32, lpips: bool = False,
             device: torch.device | str | None = None, num_workers: int = 0) -> dict[str, float]:
    """Average the objective's per-item metrics over ``data``.

    Args:
        model: The model (put in eval mode for the pass, then back).
        objective: Supplies [`evaluate`][tokenkit.train.objectives.Objective.evaluate] for one batch.
        data: Images ``(M, C, H, W)`` or a dataset (see
            [`batches_once`][tokenkit.train.evaluate.batches_once]).
        batch_size: Items per forward pass.
        lpips: Also LPIPS (VGG weights needed in the torch cache).
        device: Where the batches go (default: the model's device).
        num_workers: DataLoader workers.

    Returns:
        ``{"psnr", "ssim", ["lpips"], "usage", "perplexity", ...}`` averaged over items, and ``count``.

    Raises:
        ConfigError: Empty data.
    """
    from tokenkit.quantizers.stats import codebook_stats

    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    ids, count = [], 0
    try:
        for batch in batches_once(data, batch_size, num_workers=num_workers):
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            values, indices = objective.evaluate(model, batch, lpips=lpips)
            for name, value in values.items():
                sums[name] = sums.get(name, 0.0) + float(value.double().sum())
            count += len(next(iter(values.values())))
            if indices is not None:
                ids.append(indices.cpu())
    finally:
        model.train(was_training)
    if count == 0:
        raise ConfigError("the evaluation data is empty")
    result = {name: total / count for name, total in sums.items()}
    codebook_size = getattr(model, "codebook_size", None)
    if ids and codebook_size:
        result.update({k: float(v) for k, v in codebook_stats(torch.cat([i.flatten() for i in ids]),
                                                              codebook_size).items()})
    return {**result, "count": count}
