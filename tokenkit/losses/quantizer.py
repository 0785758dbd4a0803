"""The bottleneck's own loss as a loss term (VQ commitment + codebook, or the KL)."""

from __future__ import annotations

import dataclasses
import random

import torch

from tokenkit.errors import ContractError
from tokenkit.kinds import Loss
from tokenkit.losses.base import LossInputs
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class QuantizerLossConfig:
    """The ``quantizer`` loss has no options (its weight belongs to the composite)."""

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> QuantizerLossConfig:
        """The (only) config."""
        return cls()


@register("loss", "quantizer")
class QuantizerLoss(Loss):
    """Returns ``inputs.quantizer_loss`` unchanged.

    The VQ loss (weight 1.0 in TiTok) and the Gaussian KL (weight 1e-6) are the
    same term with different weights in the
    [`composite`][tokenkit.losses.composite.CompositeLoss].

    Args:
        config: [`QuantizerLossConfig`][tokenkit.losses.quantizer.QuantizerLossConfig].
    """

    Config = QuantizerLossConfig
    uses_reconstructions = False
    """The value does not depend on the reconstructions (contract checks read this)."""

    def __init__(self, config: QuantizerLossConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        """The scalar ``inputs.quantizer_loss``."""
        loss = inputs.quantizer_loss
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ContractError(f"quantizer_loss must be a scalar tensor, got "
                                f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
        return loss
