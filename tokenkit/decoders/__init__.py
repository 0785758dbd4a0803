"""Decoders (kind ``decoder``): codes ``(B, N, D')`` -> images ``(B, C, H, W)`` (or proxy-code logits)."""

from tokenkit.decoders.vit1d import ViT1DDecoder, ViT1DDecoderConfig
from tokenkit.decoders.vqgan import VQGANDecoder, VQGANDecoderConfig
from tokenkit.registry import import_submodules

__all__ = ["ViT1DDecoder", "ViT1DDecoderConfig", "VQGANDecoder", "VQGANDecoderConfig"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
