"""What every loss part reads and returns.

A loss part (kind ``"loss"``, base [`tokenkit.kinds.Loss`][tokenkit.kinds.Loss]) is a module
whose ``forward`` takes one [`LossInputs`][tokenkit.contracts.LossInputs] and returns a scalar
tensor ([`LossInputs`][tokenkit.contracts.LossInputs] and [`LossOutput`][tokenkit.contracts.LossOutput]
are defined with the other tensor contracts and re-exported here). Weights live in the
[`composite`][tokenkit.losses.composite.CompositeLoss] loss, never inside a single term.
"""

from __future__ import annotations

import torch

from tokenkit.contracts import LossInputs, LossOutput
from tokenkit.errors import ContractError

__all__ = ["LossInputs", "LossOutput", "as_float", "check_same_images"]


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
