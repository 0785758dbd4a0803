"""SimVQ: a frozen random codebook reparameterised by a learned linear map: ``vector_quantize_pytorch.SimVQ``.

"Addressing Representation Collapse in Vector Quantized Models with One Linear
Layer", https://arxiv.org/abs/2411.02038; the wrapped implementation is
https://github.com/lucidrains/vector-quantize-pytorch.

The codebook is ``W @ C``: ``C`` a frozen Gaussian ``(K, frozen_codebook_dim)``
buffer, ``W`` a learned linear layer. Learning ``W`` moves every code at once,
which keeps the whole codebook in use.
"""

from __future__ import annotations

import dataclasses
import random

import torch

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.quantizers.base import SameWidth
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.quantizers.vqpytorch import build_library_module, exact_codes
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class SimVQConfig(SameWidth):
    """Options of the ``simvq`` quantizer."""

    codebook_size: int = 4096
    """Number of codes ``K``."""
    dim: int = 12
    """Latent and code width (``in_dim`` = ``out_dim``)."""
    frozen_codebook_dim: int | None = None
    """Width of the frozen random codebook ``C``; ``None`` = ``dim``."""
    rotation_trick: bool = True
    """Pass gradients by the rotation trick (https://arxiv.org/abs/2410.06424) instead of the plain
    straight-through estimator (the library's default)."""
    commitment_weight: float = 1.0
    """Weight of the whole VQ loss ``||sg(z) - z_q||^2 + w_in * ||z - sg(z_q)||^2``."""
    input_to_quantize_commit_loss_weight: float = 0.25
    """``w_in``: weight of the commitment term (latents towards codes) inside it."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", "dim", optional=("frozen_codebook_dim",))
        for name in ("commitment_weight", "input_to_quantize_commit_loss_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> SimVQConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        return cls(codebook_size=rng.randint(2, 32), dim=rng.randint(1, 8),
                   frozen_codebook_dim=rng.choice([None, rng.randint(1, 8)]), rotation_trick=rng.random() < 0.5)


@register("quantizer", "simvq")
class SimVQuantizer(Quantizer):
    """SimVQ: latents ``(B, N, D)`` -> codes ``(B, N, D)`` and indices ``(B, N)``.

    Wraps ``vector_quantize_pytorch.SimVQ`` (as ``self.simvq``). Codes are
    exactly the codebook rows (``lookup(indices)``) in training and eval mode,
    with the library's gradient estimator; ``loss`` is the library's VQ loss
    (also computed in eval mode); ``stats`` holds ``usage``, ``perplexity`` and
    ``commitment_loss`` (that loss, detached).

    Args:
        config: [`SimVQConfig`][tokenkit.quantizers.simvq.SimVQConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> vq = tk.build_part("quantizer", tk.Part("simvq", codebook_size=16, dim=4)).eval()
        >>> out = vq(torch.randn(2, 3, 4))
        >>> torch.equal(vq.lookup(out.indices), out.codes)
        True
    """

    Config = SimVQConfig
    codes_are_fixed_points = True
    """Quantizing ``forward(...).codes`` again (eval mode) gives back the same ids (codes are codebook rows)."""

    def __init__(self, config: SimVQConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import SimVQ

        self.config = config
        self.codebook_size = config.codebook_size
        self.simvq = build_library_module(lambda: SimVQ(
            dim=config.dim, codebook_size=config.codebook_size, frozen_codebook_dim=config.frozen_codebook_dim,
            rotation_trick=config.rotation_trick, commitment_weight=config.commitment_weight,
            input_to_quantize_commit_loss_weight=config.input_to_quantize_commit_loss_weight))

    def codebook(self) -> torch.Tensor:
        """The ``(K, D)`` implicit codebook ``W @ C``."""
        return self.simvq.codebook

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize ``latents`` ``(B, N, D)``; see [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]."""
        quantized, indices, loss = self.simvq(latents)
        indices = indices.long()
        codes = exact_codes(self.lookup(indices), quantized)  # the rotation trick gives the code up to rounding
        stats = {"commitment_loss": loss.detach().float(), **codebook_stats(indices, self.codebook_size)}
        return QuantizerOutput(codes.to(latents.dtype), indices, loss.sum(), stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for token ids: ``(B, N)`` int64 -> ``(B, N, D)`` (equal to ``forward(...).codes``).

        Transforms only the frozen rows asked for (the library's ``indices_to_codes``
        also transforms the whole codebook, unused).
        """
        return self.simvq.code_transform(self.simvq.frozen_codebook[indices])
