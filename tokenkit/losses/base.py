"""What every loss part reads and returns.

A loss part (kind ``"loss"``) is an ``nn.Module`` whose ``forward`` takes one
[`LossInputs`][tokenkit.losses.base.LossInputs] and returns a scalar tensor.
Weights live in the [`composite`][tokenkit.losses.composite.CompositeLoss]
loss, never inside a single term.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from tokenkit.errors import ContractError


class LossInputs(NamedTuple):
    """Everything a loss term may need from one training step.

    Attributes:
        images: ``(B, C, H, W)`` real images in [0, 1].
        reconstructions: ``(B, C, H, W)`` reconstructed images, or proxy-code logits
            ``(B, L, K)`` for the stage-1 cross-entropy.
        quantizer_loss: Scalar bottleneck loss (VQ commitment + codebook, or the KL).
        targets: Optional ``(B, L)`` int64 teacher codes (stage 1).
        step: Global optimisation step (schedules the adversarial term).
    """

    images: torch.Tensor
    reconstructions: torch.Tensor
    quantizer_loss: torch.Tensor
    targets: torch.Tensor | None = None
    step: int = 0


class LossOutput(NamedTuple):
    """A total loss with its (weighted, detached) parts.

    Attributes:
        loss: Scalar total to back-propagate.
        terms: ``{name: detached scalar}``, each term already multiplied by its weight.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def check_same_images(inputs: LossInputs, what: str) -> None:
    """Raise unless ``images`` and ``reconstructions`` are equal-shaped ``(B, C, H, W)`` float tensors."""
    images, recon = inputs.images, inputs.reconstructions
    if not (isinstance(images, torch.Tensor) and isinstance(recon, torch.Tensor)):
        raise ContractError(f"{what}: images and reconstructions must be tensors")
    if images.ndim != 4 or images.shape != recon.shape:
        raise ContractError(f"{what}: images and reconstructions must both be (B, C, H, W) of one shape, got "
                            f"{tuple(images.shape)} and {tuple(recon.shape)}")
    if not (images.is_floating_point() and recon.is_floating_point()):
        raise ContractError(f"{what}: images and reconstructions must be float tensors")


def as_float(t: torch.Tensor) -> torch.Tensor:
    """``t`` in at least fp32 (half precision is upcast, float64 is kept)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))
