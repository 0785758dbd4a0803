"""Bottlenecks (kind ``quantizer``): latents ``(B, N, D)`` -> ``QuantizerOutput``."""

from tokenkit.quantizers.gaussian import DiagonalGaussian, GaussianBottleneck, GaussianConfig
from tokenkit.quantizers.vq import VectorQuantizer, VQConfig
from tokenkit.quantizers.vqgan import VQGANQuantizer, VQGANQuantizerConfig

__all__ = ["DiagonalGaussian", "GaussianBottleneck", "GaussianConfig", "VectorQuantizer", "VQConfig",
           "VQGANQuantizer", "VQGANQuantizerConfig"]
