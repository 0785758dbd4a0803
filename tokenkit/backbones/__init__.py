"""Transformer stacks (kind ``backbone``): tokens ``(B, L, W)`` -> tokens ``(B, L, W)``."""

from tokenkit.backbones.bert import BertBackbone, BertConfig
from tokenkit.backbones.dit import DiTBackbone, DiTConfig
from tokenkit.backbones.uvit import UViTBackbone, UViTConfig
from tokenkit.backbones.vit import ViTBackbone, ViTConfig
from tokenkit.backbones.xtransformers import XTransformersBackbone, XTransformersConfig
from tokenkit.registry import import_submodules

__all__ = ["BertBackbone", "BertConfig", "DiTBackbone", "DiTConfig", "UViTBackbone", "UViTConfig", "ViTBackbone", "ViTConfig",
           "XTransformersBackbone", "XTransformersConfig"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
