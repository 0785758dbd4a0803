"""Transformer feed-forward block."""

from __future__ import annotations

import torch
from torch import nn


class Mlp(nn.Module):
    """``fc2(GELU(fc1(x)))`` with exact (erf) GELU.

    Args:
        width: Input and output width.
        hidden: Hidden width.
    """

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(..., width)``. Returns: ``(..., width)``."""
        return self.fc2(self.act(self.fc1(x)))
