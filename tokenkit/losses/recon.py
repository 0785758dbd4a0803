"""Pixel reconstruction loss (L1 or L2, mean over all elements; official ``modeling/modules/losses.py`` L172-178)."""

from __future__ import annotations

import dataclasses
import random
from typing import Literal

import torch
import torch.nn.functional as F

from tokenkit.kinds import Loss
from tokenkit.losses.base import LossInputs, as_float, check_same_images
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class ReconConfig:
    """Options of the ``recon`` loss."""

    kind: Literal["l1", "l2"] = "l2"
    """``"l2"``: mean squared error (TiTok); ``"l1"``: mean absolute error."""

    def __post_init__(self) -> None:
        if self.kind not in ("l1", "l2"):
            raise ValueError(f"kind must be 'l1' or 'l2', got {self.kind!r}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> ReconConfig:
        """A valid config for tests (randomised by ``rng``)."""
        return cls(kind=(rng or random.Random(0)).choice(("l1", "l2")))


@register("loss", "recon")
class ReconstructionLoss(Loss):
    """``mean |x - x_hat|^p`` over all elements, ``p`` = 1 or 2.

    Args:
        config: [`ReconConfig`][tokenkit.losses.recon.ReconConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> from tokenkit.losses import LossInputs
        >>> loss = tk.build_part("loss", tk.Part("recon", kind="l1"))
        >>> x = torch.zeros(1, 3, 2, 2)
        >>> loss(LossInputs(x, x + 0.5, torch.zeros(()))).item()
        0.5
    """

    Config = ReconConfig

    def __init__(self, config: ReconConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        """Scalar loss between ``inputs.images`` and ``inputs.reconstructions`` (both ``(B, C, H, W)``)."""
        check_same_images(inputs, "recon loss")
        fn = F.l1_loss if self.config.kind == "l1" else F.mse_loss
        return fn(as_float(inputs.reconstructions), as_float(inputs.images), reduction="mean")
