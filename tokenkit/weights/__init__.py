"""Weights as data: safe file I/O, sources on disk and on the Hub, converters of the official
checkpoints, strict loading into a module, and the files of a saved model.

This package never builds a model (it imports no model or API module); building a model
with weights is [`tokenkit.from_pretrained`][tokenkit.pretrained.from_pretrained] and
``tk.build(name, pretrained=...)``.
"""

from tokenkit.weights.model_files import push_to_hub, save_pretrained
from tokenkit.weights.official import detect_layout, to_tokenkit
from tokenkit.weights.state import load_weights

__all__ = ["detect_layout", "load_weights", "push_to_hub", "save_pretrained", "to_tokenkit"]
