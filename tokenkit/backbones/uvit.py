"""U-ViT stack with long skip connections (the transformer of TiTok's UViTBert generator).

"All are Worth Words: A ViT Backbone for Diffusion Models", https://arxiv.org/abs/2209.12152;
layout of the official ``UViTBert`` (``modeling/maskgit.py`` L209-282; blocks: ``UViTBlock``,
``modeling/modules/blocks.py`` L177-204): ``depth // 2`` pre-LN ``in_blocks`` whose outputs are
stacked, a ``mid_block``, ``depth // 2`` ``out_blocks`` each first fusing the
last stacked output (``skip_linear(cat[x, skip])``, LIFO), then a final
LayerNorm. Attention has a bias-free ``qkv``.
"""

from __future__ import annotations

import dataclasses
import random

import torch
from torch import nn

from tokenkit.backbones.vit import ViTBlock, ViTConfig
from tokenkit.kinds import Backbone
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class UViTConfig(ViTConfig):
    """Options of the ``uvit`` backbone: those of [`ViTConfig`][tokenkit.backbones.vit.ViTConfig]
    with UViTBert's defaults; ``depth`` must be even."""

    width: int = 1024
    """Token width ``W``."""
    depth: int = 20
    """Blocks on each side times two (``depth // 2`` in, 1 mid, ``depth // 2`` out); must be even."""
    heads: int = 16
    """Attention heads; must divide ``width``."""
    qkv_bias: bool = False
    """Bias on the ``qkv`` projection (UViTBert has none)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.depth % 2:
            raise ValueError(f"depth must be even (depth // 2 blocks on each side), got {self.depth}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> UViTConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2, 4])
        return cls(width=heads * rng.choice([4, 8]), depth=2 * rng.randint(1, 2), heads=heads)


class UViTBlock(ViTBlock):
    """Pre-LN block with an optional ``skip_linear`` fusing a long skip connection first."""

    def __init__(self, config: ViTConfig, skip: bool) -> None:
        super().__init__(config)
        self.skip_linear = nn.Linear(2 * config.width, config.width) if skip else None

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x, skip: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        return super().forward(x)


@register("backbone", "uvit")
class UViTBackbone(Backbone):
    """U-ViT: tokens ``(B, L, W)`` -> normalised tokens ``(B, L, W)``.

    Args:
        config: [`UViTConfig`][tokenkit.backbones.uvit.UViTConfig].
    """

    Config = UViTConfig

    def __init__(self, config: UViTConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        block = ViTConfig(width=config.width, depth=1, heads=config.heads, mlp_ratio=config.mlp_ratio,
                          qkv_bias=config.qkv_bias, norm_eps=config.norm_eps)
        half = config.depth // 2
        self.in_blocks = nn.ModuleList(UViTBlock(block, skip=False) for _ in range(half))
        self.mid_block = UViTBlock(block, skip=False)
        self.out_blocks = nn.ModuleList(UViTBlock(block, skip=True) for _ in range(half))
        self.norm = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.apply(_init_uvit)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Args: tokens: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        x, skips = tokens, []
        for block in self.in_blocks:
            x = block(x)
            skips.append(x)
        x = self.mid_block(x)
        for block in self.out_blocks:
            x = block(x, skips.pop())
        return self.norm(x)


def _init_uvit(module: nn.Module) -> None:
    """U-ViT init: truncated-normal(0.02) linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
