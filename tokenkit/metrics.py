"""Image and codebook metrics."""

from __future__ import annotations

import torch


def psnr(images: torch.Tensor, reference: torch.Tensor, *, max_value: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        images: ``(B, C, H, W)`` in ``[0, max_value]``.
        reference: Same shape.
        max_value: Peak value (1 for images in [0, 1]).

    Returns:
        ``(B,)`` PSNR (``inf`` for identical images).

    Example:
        >>> import torch
        >>> from tokenkit.metrics import psnr
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> round(psnr(x + 0.1, x).item(), 2)
        20.0
    """
    if images.shape != reference.shape:
        raise ValueError(f"psnr needs equal shapes, got {tuple(images.shape)} and {tuple(reference.shape)}")
    mse = (images.float() - reference.float()).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(max_value**2 / mse)
