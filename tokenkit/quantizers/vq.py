"""TiTok's vector quantizer (official ``modeling/quantizer/quantizer.py``, ``VectorQuantizer`` L30-130).

Nearest codebook entry by squared Euclidean distance, optionally on
l2-normalised latents and codebook (cosine similarity), with the VQ-VAE
commitment and codebook losses and the straight-through estimator.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from torch import nn

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.quantizers.base import SameWidth
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class VQConfig(SameWidth):
    """Options of the ``vq`` quantizer."""

    codebook_size: int = 4096
    """Number of codes ``K``."""
    dim: int = 12
    """Code width (``in_dim`` = ``out_dim``)."""
    commitment_cost: float = 0.25
    """Weight ``beta`` of the commitment term ``||sg(z_q) - z||^2``."""
    l2_norm: bool = False
    """Normalise latents and codebook rows before the search; codes are unit vectors."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", "dim")
        if self.commitment_cost < 0:
            raise ValueError(f"commitment_cost must be >= 0, got {self.commitment_cost}")
        if self.l2_norm and self.dim < 2:
            raise ValueError("l2_norm needs dim >= 2 (unit vectors of width 1 are just signs, with no gradient)")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> VQConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        l2_norm = rng.random() < 0.5
        return cls(codebook_size=rng.randint(2, 32), dim=rng.randint(2 if l2_norm else 1, 8), l2_norm=l2_norm)


@register("quantizer", "vq")
class VectorQuantizer(Quantizer):
    """Vector quantizer: latents ``(B, N, D)`` -> codes ``(B, N, D)`` and indices ``(B, N)``.

    The search runs in fp32. ``loss = commitment_cost * commitment + codebook``;
    codes carry the straight-through gradient to the latents.

    Args:
        config: [`VQConfig`][tokenkit.quantizers.vq.VQConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> vq = tk.build_part("quantizer", tk.Part("vq", codebook_size=16, dim=4)).eval()
        >>> out = vq(torch.randn(2, 3, 4))
        >>> out.codes.shape, out.indices.shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))
        >>> torch.equal(vq.lookup(out.indices), out.codes)
        True
    """

    Config = VQConfig

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        self.config = config
        self.codebook_size = config.codebook_size
        self.embedding = nn.Embedding(config.codebook_size, config.dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / config.codebook_size, 1.0 / config.codebook_size)

    def codebook(self) -> torch.Tensor:
        """The ``(K, D)`` codebook as used for search and lookup (normalised if ``l2_norm``)."""
        weight = self.embedding.weight.float()
        return F.normalize(weight, dim=-1) if self.config.l2_norm else weight

    def commitment_weight(self) -> tuple[float, float]:
        """Weights of (commitment, codebook) terms; TiTok puts ``beta`` on the commitment term."""
        return self.config.commitment_cost, 1.0

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize ``latents`` ``(B, N, D)``; see [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]."""
        z = latents.float()
        if self.config.l2_norm:
            z = F.normalize(z, dim=-1)
        flat = z.reshape(-1, z.shape[-1])
        book = self.codebook()
        distances = flat.pow(2).sum(1, keepdim=True) + book.pow(2).sum(1) - 2 * flat @ book.t()
        indices = distances.argmin(dim=1).reshape(z.shape[:-1])
        quantized = book[indices]
        commitment = F.mse_loss(quantized.detach(), z)
        codebook_term = F.mse_loss(quantized, z.detach())
        w_commit, w_book = self.commitment_weight()
        loss = w_commit * commitment + w_book * codebook_term
        codes = quantized + (z - z.detach())  # straight-through; value is exactly the code
        stats = {"commitment_loss": commitment.detach(), "codebook_loss": codebook_term.detach(),
                 **codebook_stats(indices, self.codebook_size)}
        return QuantizerOutput(codes.to(latents.dtype), indices, loss, stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for token ids: ``(B, N)`` int64 -> ``(B, N, D)`` (equal to ``forward(...).codes`` in value)."""
        return self.codebook()[indices]
