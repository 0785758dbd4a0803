"""Multi-head self-attention on ``F.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokenkit.layers.linear import linear


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0, *,
              attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v)`` ``(B, H, L, D)``, in fp32 where half precision is slow.

    ``attn_mask`` (bool, True = attend, broadcastable to ``(B, H, Lq, Lk)``) and ``is_causal`` are
    passed to the kernel.

    On CPU with autograd on, PyTorch's flash-attention kernel is far slower in
    bf16 / fp16 than in fp32 (forward plus backward of ``(32, 4, 24, 32)``:
    6.1 ms in bf16, 0.75 ms in fp32, 1.1 ms with the casts, on an AVX-512-bf16
    AMD EPYC; ``(4, 16, 288, 64)``: 54 ms, 37 ms, 48 ms). There the inputs are
    cast to fp32 and the output back to their dtype: more precise, and faster.
    Inference, fp32 and other devices call the kernel as it is.

    Returns:
        ``(B, H, L, D)`` in the dtype of ``q``.
    """
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled():
        with torch.autocast("cpu", enabled=False):  # CPU autocast would cast the inputs back to half precision
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), dropout_p=dropout_p,
                                                 attn_mask=attn_mask, is_causal=is_causal)
        return out.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, attn_mask=attn_mask, is_causal=is_causal)


class SelfAttention(nn.Module):
    """Bidirectional multi-head self-attention with a packed ``qkv`` projection.

    The packed weight has rows ordered ``[q; k; v]``, each head-major, which
    is the layout of ``nn.MultiheadAttention.in_proj_weight``. One matrix
    product gives q, k and v; they reach ``F.scaled_dot_product_attention`` as
    ``(B, H, L, D)`` views of it (no copy), and the attention output, which
    PyTorch's CPU kernel lays out as ``(B, L, H, D)``, is flattened to
    ``(B, L, W)`` without a copy either.

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

    def forward(self, x: torch.Tensor, *, residual: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
        """Attention of ``x`` ``(B, L, W)``, plus ``residual`` ``(B, L, W)`` if given.

        ``fused`` lets the projections run as oneDNN calls with the residual add
        fused, where that applies (see [`linear`][tokenkit.layers.linear.linear]).

        Returns:
            ``(B, L, W)``.
        """
        qkv = linear(x, self.qkv, fused=fused)
        q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=self.heads)
        out = attention(q, k, v)
        return linear(rearrange(out, "b h l d -> b l (h d)"), self.proj, residual=residual, fused=fused)
