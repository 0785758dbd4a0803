"""Transformer feed-forward block."""

from __future__ import annotations

import torch
from torch import nn

from tokenkit.layers.linear import linear


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

    def forward(self, x: torch.Tensor, *, residual: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
        """``fc2(GELU(fc1(x)))`` of ``x`` ``(..., width)``, plus ``residual`` if given.

        ``fused`` lets ``fc1 + GELU`` and ``fc2 + residual`` run as single oneDNN
        calls where that applies (see [`linear`][tokenkit.layers.linear.linear]).

        Returns:
            ``(..., width)``.
        """
        if not isinstance(self.act, nn.GELU) or self.act.approximate != "none":  # a swapped activation
            y = self.fc2(self.act(self.fc1(x)))
            return y if residual is None else residual + y
        return linear(linear(x, self.fc1, activation="gelu", fused=fused), self.fc2, residual=residual, fused=fused)
