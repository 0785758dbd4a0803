"""MaskGIT-VQGAN's vector quantizer (official ``modeling/modules/maskgit_vqgan.py``, ``VectorQuantizer`` L248).

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

from tokenkit.quantizers.vq import VectorQuantizer, VQConfig
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class VQGANQuantizerConfig(VQConfig):
    """Options of the ``vqgan`` quantizer (defaults: the released MaskGIT-VQGAN codebook).

    Those of [`VQConfig`][tokenkit.quantizers.vq.VQConfig], except that
    ``l2_norm`` must stay ``False`` (MaskGIT does not normalise).
    """

    codebook_size: int = 1024
    """Number of codes ``K``."""
    dim: int = 256
    """Code width (``in_dim`` = ``out_dim``)."""
    commitment_cost: float = 0.25
    """Weight ``beta`` of the codebook term ``||z_q - sg(z)||^2`` (MaskGIT convention)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.l2_norm:
            raise ValueError("the vqgan quantizer does not normalise: l2_norm must be False (use 'vq' for that)")

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

    Examples:
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
