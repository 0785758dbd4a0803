"""Discriminators (kind ``"discriminator"``) for adversarial tokenizer training."""

from tokenkit.discriminators.nlayer import (
    BlurDownsample,
    NLayerConfig,
    NLayerDiscriminator,
)

__all__ = ["BlurDownsample", "NLayerConfig", "NLayerDiscriminator"]
