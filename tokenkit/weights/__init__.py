"""Weights: safe file I/O, the Hub, converters for the official checkpoints, save/load."""

from tokenkit.weights.official import detect_layout, to_tokenkit
from tokenkit.weights.pretrained import from_pretrained, load_pretrained, load_weights, push_to_hub, save_pretrained

__all__ = ["detect_layout", "from_pretrained", "load_pretrained", "load_weights", "push_to_hub", "save_pretrained",
           "to_tokenkit"]
