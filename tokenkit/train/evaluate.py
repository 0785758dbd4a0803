"""Held-out evaluation: one pass over evaluation data, metrics averaged per item.

Tokenizers report PSNR, SSIM (and LPIPS with ``lpips=True``) of their
reconstructions plus codebook usage and perplexity over all token ids of the
pass (a text-aware tokenizer decodes with each image's caption); TiTok stage 1
adds the proxy-code accuracy; generators report the masked-token cross-entropy
and accuracy under fixed masks (MaskGen reads the captions), MaskGen-KL its
diffusion loss at fixed seeds.
"""

from __future__ import annotations

from contextlib import closing
from typing import Any

import torch
from torch import nn

from tokenkit.errors import ConfigError
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.train.data import batches_once, to_device
from tokenkit.train.objectives import Objective


@torch.no_grad()
def evaluate(model: nn.Module, objective: Objective, data: Any, *, batch_size: int = 32, lpips: bool = False,
             device: torch.device | str | None = None, num_workers: int = 0) -> dict[str, float]:
    """Average the objective's per-item metrics over ``data``.

    Args:
        model: The model (put in eval mode for the pass, then back).
        objective: Supplies [`evaluate`][tokenkit.train.objectives.Objective.evaluate] for one batch.
        data: Images ``(M, C, H, W)`` or a dataset (see
            [`batches_once`][tokenkit.train.data.batches_once]).
        batch_size: Items per forward pass.
        lpips: Also LPIPS (VGG weights needed in the torch cache).
        device: Where the batches go (default: the model's device).
        num_workers: DataLoader workers.

    Returns:
        ``{"psnr", "ssim", ["lpips"], "usage", "perplexity", ...}`` averaged over items, and ``count``.

    Raises:
        ConfigError: Empty data.

    Examples:
        >>> import tokenkit as tk
        >>> from tokenkit.train.objectives import Reconstruction
        >>> model = tk.build("titok-tiny")
        >>> result = evaluate(model, Reconstruction(), tk.data.sample_images(32, seed=0), batch_size=4)
        >>> sorted(result), result["count"]
        (['count', 'perplexity', 'psnr', 'ssim', 'usage'], 6)
    """
    if device is None:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    ids, count = [], 0
    try:  # closing: the dataset's mode is restored at once, also after an error
        with closing(batches_once(data, batch_size, num_workers=num_workers)) as batches:
            for batch in batches:
                values, indices = objective.evaluate(model, to_device(batch, device), lpips=lpips)
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
    codebook_size = model.codebook_size
    if ids and codebook_size:
        result.update({k: float(v) for k, v in codebook_stats(torch.cat([i.flatten() for i in ids]),
                                                              codebook_size).items()})
    return {**result, "count": count}
