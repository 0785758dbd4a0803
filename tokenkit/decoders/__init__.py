"""Decoders (kind ``decoder``): codes ``(B, N, D')`` -> images ``(B, C, H, W)`` (or proxy-code logits)."""

from tokenkit.decoders.vit1d import ViT1DDecoder, ViT1DDecoderConfig
from tokenkit.decoders.vqgan import VQGANDecoder, VQGANDecoderConfig

__all__ = ["ViT1DDecoder", "ViT1DDecoderConfig", "VQGANDecoder", "VQGANDecoderConfig"]
