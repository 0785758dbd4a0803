"""Multi-head self-attention on ``F.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention with a packed ``qkv`` projection.

    The packed weight has rows ordered ``[q; k; v]``, each head-major, which
    is the layout of ``nn.MultiheadAttention.in_proj_weight``.

    Args:
        width: Token width ``W``.
        heads: Number of heads; must divide ``width``.
        qkv_bias: Bias on the ``qkv`` projection.
    """

    def __init__(self, width: int, heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))
