"""MaskGIT-VQGAN's vector quantizer (TITOK_SPEC §4.3).

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200.

Plain Euclidean nearest neighbour on an un-normalised codebook, as the
[`vq`][tokenkit.quantizers.vq.VectorQuantizer] quantizer, but with the
MaskGIT loss convention: ``beta`` weighs the *codebook* term,
``loss = ||sg(z_q) - z||^2 + beta * ||z_q - sg(z)||^2`` (the reverse of VQ-VAE
and TiTok).
"""

from __future__ import annotations

import dataclasses
import random
from typing import ClassVar

from tokenkit.quantizers.vq import VectorQuantizer
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class VQGANQuantizerConfig:
    """Options of the ``vqgan`` quantizer (defaults: the released MaskGIT-VQGAN codebook)."""

    codebook_size: int = 1024
    """Number of codes ``K``."""
    dim: int = 256
    """Code width (``in_dim`` = ``out_dim``)."""
    commitment_cost: float = 0.25
    """Weight ``beta`` of the codebook term ``||z_q - sg(z)||^2`` (MaskGIT convention)."""
    l2_norm: ClassVar[bool] = False
    """Always ``False``: MaskGIT does not normalise (a constant, not an option)."""

    def __post_init__(self) -> None:
        for name in ("codebook_size", "dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.commitment_cost < 0:
            raise ValueError(f"commitment_cost must be >= 0, got {self.commitment_cost}")

    @property
    def in_dim(self) -> int:
        """Latent width the quantizer reads."""
        return self.dim

    @property
    def out_dim(self) -> int:
        """Code width the quantizer writes."""
        return self.dim

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> VQGANQuantizerConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        return cls(codebook_size=rng.randint(2, 32), dim=rng.randint(1, 8))


@register("quantizer", "vqgan")
class VQGANQuantizer(VectorQuantizer):
    """MaskGIT-VQGAN quantizer: latents ``(B, N, D)`` -> codes ``(B, N, D)`` and indices ``(B, N)``.

    Search, lookup, statistics and the straight-through estimator are those of
    [`VectorQuantizer`][tokenkit.quantizers.vq.VectorQuantizer] (no l2
    normalisation); only the loss weights differ. The codebook is
    ``embedding.weight`` (official ``quantize.embedding.weight``), initialised U(-1/K, 1/K).

    Args:
        config: [`VQGANQuantizerConfig`][tokenkit.quantizers.vqgan.VQGANQuantizerConfig].

    Example:
        >>> import torch, tokenkit as tk
        >>> vq = tk.build_part("quantizer", tk.Part("vqgan", codebook_size=16, dim=4)).eval()
        >>> out = vq(torch.randn(2, 9, 4))
        >>> torch.allclose(vq.lookup(out.indices), out.codes)
        True
    """

    Config = VQGANQuantizerConfig

    def commitment_weight(self) -> tuple[float, float]:
        """Weights of (commitment, codebook) terms; MaskGIT puts ``beta`` on the codebook term."""
        return 1.0, self.config.commitment_cost
