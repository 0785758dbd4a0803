"""Generators (kind ``generator``): ``indices (B, N)`` + class labels -> ``logits (B, N, K)``, and sampling."""

from tokenkit.generators.maskgit import MaskGIT, MaskGITConfig
from tokenkit.generators.sampling import SamplingConfig, generate, mask_tokens, masked_token_loss
from tokenkit.registry import import_submodules

__all__ = ["MaskGIT", "MaskGITConfig", "SamplingConfig", "generate", "mask_tokens", "masked_token_loss"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
