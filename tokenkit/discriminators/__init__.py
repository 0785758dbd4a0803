"""Discriminators (kind ``"discriminator"``) for adversarial tokenizer training."""

from tokenkit.discriminators.nlayer import BlurDownsample, NLayerConfig, NLayerDiscriminator
from tokenkit.registry import import_submodules

__all__ = ["BlurDownsample", "NLayerConfig", "NLayerDiscriminator"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
