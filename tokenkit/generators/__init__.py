"""Generators (kind ``generator``): ``indices (B, N)`` + class labels -> ``logits (B, N, K)``, and sampling."""

from tokenkit.generators.maskgit import MaskGIT, MaskGITConfig
from tokenkit.generators.sampling import SamplingConfig, generate, mask_tokens, masked_token_loss

__all__ = ["MaskGIT", "MaskGITConfig", "SamplingConfig", "generate", "mask_tokens", "masked_token_loss"]
