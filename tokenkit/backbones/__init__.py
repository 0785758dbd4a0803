"""Transformer stacks (kind ``backbone``): tokens ``(B, L, W)`` -> tokens ``(B, L, W)``."""

from tokenkit.backbones.bert import BertBackbone, BertConfig
from tokenkit.backbones.uvit import UViTBackbone, UViTConfig
from tokenkit.backbones.vit import ViTBackbone, ViTConfig
from tokenkit.backbones.xtransformers import XTransformersBackbone, XTransformersConfig

__all__ = ["BertBackbone", "BertConfig", "UViTBackbone", "UViTConfig", "ViTBackbone", "ViTConfig",
           "XTransformersBackbone", "XTransformersConfig"]
