"""Encoders (kind ``encoder``): images ``(B, C, H, W)`` in [0, 1] -> latents ``(B, N, D)``."""

from tokenkit.encoders.vit1d import ViT1DEncoder, ViT1DEncoderConfig
from tokenkit.encoders.vqgan import VQGANEncoder, VQGANEncoderConfig

__all__ = ["ViT1DEncoder", "ViT1DEncoderConfig", "VQGANEncoder", "VQGANEncoderConfig"]
