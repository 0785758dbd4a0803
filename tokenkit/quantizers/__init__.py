"""Bottlenecks (kind ``quantizer``): latents ``(B, N, D)`` -> ``QuantizerOutput``."""

from tokenkit.quantizers.fsq import FSQConfig, FSQuantizer
from tokenkit.quantizers.gaussian import DiagonalGaussian, GaussianBottleneck, GaussianConfig
from tokenkit.quantizers.lfq import LFQConfig, LFQuantizer
from tokenkit.quantizers.rvq import ResidualVQuantizer, RVQConfig
from tokenkit.quantizers.simvq import SimVQConfig, SimVQuantizer
from tokenkit.quantizers.tail_drop import TailDrop, TailDropConfig
from tokenkit.quantizers.vq import VectorQuantizer, VQConfig
from tokenkit.quantizers.vq_ema import VQEMAConfig, VQEMAQuantizer
from tokenkit.quantizers.vqgan import VQGANQuantizer, VQGANQuantizerConfig
from tokenkit.registry import import_submodules

__all__ = ["DiagonalGaussian", "FSQConfig", "FSQuantizer", "GaussianBottleneck", "GaussianConfig", "LFQConfig",
           "LFQuantizer", "ResidualVQuantizer", "RVQConfig", "SimVQConfig", "SimVQuantizer", "TailDrop",
           "TailDropConfig", "VectorQuantizer", "VQConfig", "VQEMAConfig", "VQEMAQuantizer", "VQGANQuantizer",
           "VQGANQuantizerConfig"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
