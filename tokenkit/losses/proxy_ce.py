"""Stage-1 TiTok proxy-code cross-entropy.

Official: ``ReconstructionLoss_Stage1``, ``modeling/modules/losses.py`` L68-106.

The decoder predicts ``K``-way logits for each of the teacher's ``L`` codes
(MaskGIT-VQGAN: ``L`` = 256, ``K`` = 1024); the loss is the mean cross-entropy.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F

from tokenkit.errors import ContractError
from tokenkit.kinds import Loss
from tokenkit.losses.base import LossInputs, as_float
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class ProxyCEConfig:
    """The ``proxy-ce`` loss has no options."""

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> ProxyCEConfig:
        """The (only) config."""
        return cls()


@register("loss", "proxy-ce")
class ProxyCrossEntropy(Loss):
    """Cross-entropy of logits ``(B, L, K)`` (``inputs.reconstructions``) against codes ``(B, L)`` (``inputs.targets``).

    Args:
        config: [`ProxyCEConfig`][tokenkit.losses.proxy_ce.ProxyCEConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> from tokenkit.losses import LossInputs
        >>> ce = tk.build_part("loss", "proxy-ce")
        >>> logits = torch.zeros(2, 3, 4)
        >>> round(ce(LossInputs(None, logits, torch.zeros(()), targets=torch.zeros(2, 3, dtype=torch.long))).item(), 4)
        1.3863
    """

    Config = ProxyCEConfig
    needs_targets = True
    """Reads ``targets`` and proxy logits (contract checks read this)."""

    def __init__(self, config: ProxyCEConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        """Mean cross-entropy over all ``B * L`` positions."""
        logits, targets = inputs.reconstructions, inputs.targets
        if targets is None:
            raise ContractError("proxy-ce needs targets: (B, L) int64 teacher codes")
        if logits.ndim != 3 or targets.shape != logits.shape[:2]:
            raise ContractError(f"proxy-ce needs logits (B, L, K) and targets (B, L), got {tuple(logits.shape)} "
                                f"and {tuple(targets.shape)}")
        if targets.dtype != torch.int64:
            raise ContractError(f"targets must be int64, got {targets.dtype}")
        return F.cross_entropy(as_float(logits).flatten(0, 1), targets.flatten(), reduction="mean")
