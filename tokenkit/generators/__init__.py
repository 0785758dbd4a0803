"""Generators (kind ``generator``): ``indices (B, N)`` + class labels -> ``logits (B, N, K)``, and sampling
(masked: MaskGIT; autoregressive: RAR)."""

from tokenkit.generators.ar import ARConfig, ARGenerator
from tokenkit.generators.ar_sampling import ARSamplingConfig, generate_autoregressive
from tokenkit.generators.maskgit import MaskGIT, MaskGITConfig
from tokenkit.generators.sampling import SamplingConfig, generate, mask_tokens, masked_token_loss
from tokenkit.registry import import_submodules

__all__ = ["ARConfig", "ARGenerator", "ARSamplingConfig", "MaskGIT", "MaskGITConfig", "SamplingConfig", "generate",
           "generate_autoregressive", "mask_tokens", "masked_token_loss"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
