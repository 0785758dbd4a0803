"""Encoders (kind ``encoder``): images ``(B, C, H, W)`` in [0, 1] -> latents ``(B, N, D)``."""

from tokenkit.encoders.vit1d import ViT1DEncoder, ViT1DEncoderConfig
from tokenkit.encoders.vqgan import VQGANEncoder, VQGANEncoderConfig
from tokenkit.registry import import_submodules

__all__ = ["ViT1DEncoder", "ViT1DEncoderConfig", "VQGANEncoder", "VQGANEncoderConfig"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
