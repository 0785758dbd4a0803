"""Transformer stacks (kind ``backbone``): tokens ``(B, L, W)`` -> tokens ``(B, L, W)``."""

from tokenkit.backbones.vit import ViTBackbone, ViTConfig

__all__ = ["ViTBackbone", "ViTConfig"]
