"""Pre-LN ViT transformer stack (open_clip / TiTok layout).

Each block is ``x + Attn(LN1(x))`` then ``x + MLP(LN2(x))`` with biases,
exact GELU and ``F.scaled_dot_product_attention``. The parameters map one to
one onto TiTok's ``ResidualAttentionBlock`` (``ln_1 -> norm1``,
``attn.in_proj_* -> attn.qkv``, ``attn.out_proj -> attn.proj``,
``ln_2 -> norm2``, ``mlp.c_fc -> mlp.fc1``, ``mlp.c_proj -> mlp.fc2``).
"""

from __future__ import annotations

import dataclasses
import random

import torch
from torch import nn

from tokenkit.kinds import Backbone
from tokenkit.layers import Mlp, SelfAttention, init_titok_weights
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class ViTConfig:
    """Options of the ``vit`` backbone."""

    width: int = 768
    """Token width ``W``."""
    depth: int = 12
    """Number of blocks."""
    heads: int = 12
    """Attention heads; must divide ``width``."""
    mlp_ratio: float = 4.0
    """MLP hidden width as a multiple of ``width``."""
    qkv_bias: bool = True
    """Bias on the packed ``qkv`` projection."""
    norm_eps: float = 1e-5
    """LayerNorm epsilon."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "width", "depth", "heads")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> ViTConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2, 4])
        return cls(width=heads * rng.choice([4, 8]), depth=rng.randint(1, 2), heads=heads,
                   mlp_ratio=rng.choice([2.0, 4.0]))


class ViTBlock(nn.Module):
    """One pre-LN block: ``x += attn(norm1(x)); x += mlp(norm2(x))``.

    Attributes:
        fused_inference: Let the four linear maps run as oneDNN calls with GELU and
            the residual adds fused, without autograd on CPU in float32
            ([`linear`][tokenkit.layers.linear.linear]): faster, equal up to float
            rounding (not bitwise). On by default; set through
            [`ViTBackbone.fused_inference`][tokenkit.backbones.vit.ViTBackbone.fused_inference].
    """

    fused_inference: bool = True

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.attn = SelfAttention(config.width, config.heads, qkv_bias=config.qkv_bias)
        self.norm2 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.mlp = Mlp(config.width, int(config.width * config.mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        x = self.attn(self.norm1(x), residual=x, fused=self.fused_inference)
        return self.mlp(self.norm2(x), residual=x, fused=self.fused_inference)


@register("backbone", "vit")
class ViTBackbone(Backbone):
    """Stack of pre-LN transformer blocks.

    Args:
        config: [`ViTConfig`][tokenkit.backbones.vit.ViTConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> net = tk.build_part("backbone", tk.Part("vit", width=16, depth=1, heads=2))
        >>> net(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    Config = ViTConfig
    has_fused_inference = True

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        self.blocks = nn.ModuleList(ViTBlock(config) for _ in range(config.depth))
        self.apply(init_titok_weights)
        for block in self.blocks:  # packed qkv keeps nn.MultiheadAttention's init
            nn.init.xavier_uniform_(block.attn.qkv.weight)

    @property
    def fused_inference(self) -> bool:
        """Whether the blocks run their linear maps as fused oneDNN calls in CPU float32 inference (default on).

        Only without autograd, on CPU, in float32 (see [`linear`][tokenkit.layers.linear.linear]):
        about 1.5x faster matrix products than ``nn.Linear`` (MKL) on the AVX-512 machine the
        performance guide was measured on, with outputs equal up to float rounding. ``False``
        computes what ``nn.Linear`` computes. Neither is bit for bit the official TiTok code
        (latents differ from it by about 2e-6 either way), so a token id can differ from the
        official one only where two codes are within that rounding of each other; it was not
        observed in 9,216 tokens (``docs/guides/performance.md``).
        """
        return any(block.fused_inference for block in self.blocks)

    @fused_inference.setter
    def fused_inference(self, value: bool) -> None:
        for block in self.blocks:
            block.fused_inference = bool(value)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Args: tokens: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        for block in self.blocks:
            tokens = block(tokens)
        return tokens
