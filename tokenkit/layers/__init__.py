"""Reusable layers shared by every part."""

from tokenkit.layers.attention import SelfAttention
from tokenkit.layers.init import init_titok_weights
from tokenkit.layers.kv_cache import KVCache
from tokenkit.layers.linear import linear
from tokenkit.layers.mlp import Mlp
from tokenkit.layers.vqgan_blocks import ResnetBlock

__all__ = ["KVCache", "Mlp", "ResnetBlock", "SelfAttention", "init_titok_weights", "linear"]
