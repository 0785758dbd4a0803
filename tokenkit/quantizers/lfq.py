"""Lookup-free quantization: ``vector_quantize_pytorch.LFQ``.

"Language Model Beats Diffusion -- Tokenizer is Key to Visual Generation"
(MAGVIT-v2), https://arxiv.org/abs/2310.05737; the wrapped implementation is
https://github.com/lucidrains/vector-quantize-pytorch.

Each of ``log2(K)`` channels is quantized to its sign (``-1`` or ``+1``); the
id is the binary number the signs spell. No codebook is looked up or learned;
an entropy loss (low per-sample entropy, high batch entropy) keeps the codes in
use.
"""

from __future__ import annotations

import dataclasses
import math
import random

import torch

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.quantizers.vqpytorch import build_library_module
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class LFQConfig:
    """Options of the ``lfq`` quantizer."""

    codebook_size: int = 4096
    """Number of codes ``K``: a power of 2 between 2 and 2**30 (``log2(K)`` binary channels)."""
    dim: int | None = None
    """Latent and code width; ``None`` = ``log2(K)`` (no projection). Another value adds linear
    projections in and out."""
    entropy_loss_weight: float = 0.1
    """Weight of the entropy loss (training mode)."""
    commitment_loss_weight: float = 0.25
    """Weight of the commitment loss ``||z - sg(z_q)||^2`` (MAGVIT-v2's; the library's default is 0)."""
    diversity_gamma: float = 1.0
    """Weight of the batch (codebook) entropy inside the entropy loss."""
    entropy_inv_temperature: float = 100.0
    """Inverse temperature of the soft code assignment that the entropy loss is computed on."""
    spherical: bool = False
    """Binary spherical quantization (https://arxiv.org/abs/2406.07548): l2-normalised inputs and codes
    (codes are ``+-1 / sqrt(log2(K))``)."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", optional=("dim",))
        bits = self.codebook_size.bit_length() - 1
        if self.codebook_size < 2 or 2**bits != self.codebook_size or bits > 30:
            raise ValueError(f"codebook_size must be a power of 2 between 2 and 2**30, got {self.codebook_size}")
        for name in ("entropy_loss_weight", "commitment_loss_weight", "diversity_gamma", "entropy_inv_temperature"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.spherical and self.bits < 2:
            raise ValueError("spherical needs codebook_size >= 4 (unit vectors of width 1 are just signs, "
                             "with no gradient)")

    @property
    def bits(self) -> int:
        """``log2(K)``: binary channels."""
        return int(math.log2(self.codebook_size))

    @property
    def in_dim(self) -> int:
        """Latent width the quantizer reads."""
        return self.bits if self.dim is None else self.dim

    @property
    def out_dim(self) -> int:
        """Code width the quantizer writes."""
        return self.in_dim

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> LFQConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        bits = rng.randint(1, 5)
        return cls(codebook_size=2**bits, dim=rng.choice([None, rng.randint(1, 6)]),
                   entropy_loss_weight=rng.choice([0.0, 0.1]), commitment_loss_weight=rng.choice([0.0, 0.25]),
                   spherical=bits >= 2 and rng.random() < 0.3)


@register("quantizer", "lfq")
class LFQuantizer(Quantizer):
    """LFQ: latents ``(B, N, D)`` -> codes ``(B, N, D)`` of signs and indices ``(B, N)``.

    Wraps ``vector_quantize_pytorch.LFQ`` (as ``self.lfq``). Signs pass
    gradients straight through (training mode); ``loss`` is the weighted
    entropy and commitment losses in training and zero in eval mode; ``stats``
    holds ``usage``, ``perplexity`` and the library's loss terms
    (``per_sample_entropy``, ``batch_entropy``, ``commitment_loss``).

    Args:
        config: [`LFQConfig`][tokenkit.quantizers.lfq.LFQConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> lfq = tk.build_part("quantizer", tk.Part("lfq", codebook_size=16)).eval()
        >>> out = lfq(torch.randn(2, 3, 4))
        >>> out.codes.abs().unique().tolist()
        [1.0]
        >>> torch.equal(lfq.lookup(out.indices), out.codes)
        True
    """

    Config = LFQConfig

    def __init__(self, config: LFQConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import LFQ

        self.config = config
        self.codebook_size = config.codebook_size
        self.lfq = build_library_module(lambda: LFQ(
            dim=config.in_dim, codebook_size=config.codebook_size, entropy_loss_weight=config.entropy_loss_weight,
            commitment_loss_weight=config.commitment_loss_weight, diversity_gamma=config.diversity_gamma,
            spherical=config.spherical))

    @property
    def codes_are_fixed_points(self) -> bool:
        """Whether quantizing ``forward(...).codes`` again (eval mode) gives back the same ids: yes (signs
        of signs), unless ``dim`` adds projections (a linear map in after one out is not the identity)."""
        return not self.lfq.has_projections

    def codebook(self) -> torch.Tensor:
        """The implicit ``(K, log2(K))`` codebook of signs (before the output projection, if any)."""
        return self.lfq.indices_to_codes(torch.arange(self.codebook_size, device=self.lfq.codebook.device),
                                         project_out=False)

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize ``latents`` ``(B, N, D)``; see [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]."""
        (codes, indices, loss), breakdown = self.lfq(
            latents, inv_temperature=self.config.entropy_inv_temperature, return_loss_breakdown=True)
        indices = indices.long()
        stats = {"per_sample_entropy": breakdown.per_sample_entropy.detach().float(),
                 "batch_entropy": breakdown.batch_entropy.detach().float(),
                 "commitment_loss": breakdown.commitment.detach().float(),
                 **codebook_stats(indices, self.codebook_size)}
        return QuantizerOutput(codes.to(latents.dtype), indices, loss.sum(), stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for token ids: ``(B, N)`` int64 -> ``(B, N, D)`` (equal to ``forward(...).codes`` in eval mode)."""
        return self.lfq.indices_to_codes(indices)
