"""Finite scalar quantization: ``vector_quantize_pytorch.FSQ``.

"Finite Scalar Quantization: VQ-VAE Made Simple", https://arxiv.org/abs/2309.15505;
the wrapped implementation is https://github.com/lucidrains/vector-quantize-pytorch.

Each of ``len(levels)`` channels is bounded (``tanh``) and rounded to one of
``levels[i]`` values in [-1, 1]; the implicit codebook is their product grid,
``K = prod(levels)``. No codebook is learned and there is no auxiliary loss.

Note:
    Codes live in the bounded space, not the latent space: quantizing a code
    again applies the bound a second time and in general gives another id.
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

MAX_CODEBOOK_SIZE = 2**24
"""Largest ``prod(levels)``: the library computes ids in float32 (exact up to 2**24)."""


@dataclasses.dataclass(frozen=True)
class FSQConfig:
    """Options of the ``fsq`` quantizer."""

    levels: tuple[int, ...] = (8, 5, 5, 5)
    """Quantization levels per channel; the codebook size is their product (default 1000)."""
    dim: int | None = None
    """Latent and code width; ``None`` = ``len(levels)`` (no projection). Another value adds
    linear projections in and out."""
    preserve_symmetry: bool = False
    """Symmetry-preserving rounding (https://arxiv.org/abs/2411.19842); required for levels of 2."""
    noise_dropout: float = 0.0
    """In training, replace this fraction of the rounded values by noise (needs ``preserve_symmetry``)."""

    def __post_init__(self) -> None:
        if isinstance(self.levels, list):
            object.__setattr__(self, "levels", tuple(self.levels))
        if not isinstance(self.levels, tuple) or not self.levels or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 2 for v in self.levels):
            raise ValueError(f"levels must be a non-empty tuple of ints >= 2, got {self.levels!r}")
        if 2 in self.levels and not self.preserve_symmetry:
            raise ValueError(f"levels {self.levels} contain 2: set preserve_symmetry=True (or use 3 or more levels)")
        if math.prod(self.levels) > MAX_CODEBOOK_SIZE:
            raise ValueError(f"prod(levels) = {math.prod(self.levels)} exceeds {MAX_CODEBOOK_SIZE} (2**24)")
        check_positive_ints(self, optional=("dim",))
        if not 0.0 <= self.noise_dropout < 1.0:
            raise ValueError(f"noise_dropout must be in [0, 1), got {self.noise_dropout}")
        if self.noise_dropout > 0 and not self.preserve_symmetry:
            raise ValueError("noise_dropout needs preserve_symmetry=True")

    @property
    def codebook_size(self) -> int:
        """``K = prod(levels)``."""
        return math.prod(self.levels)

    @property
    def in_dim(self) -> int:
        """Latent width the quantizer reads."""
        return len(self.levels) if self.dim is None else self.dim

    @property
    def out_dim(self) -> int:
        """Code width the quantizer writes."""
        return self.in_dim

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> FSQConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        symmetric = rng.random() < 0.3
        levels = tuple(rng.randint(2 if symmetric else 3, 8) for _ in range(rng.randint(1, 4)))
        return cls(levels=levels, dim=rng.choice([None, rng.randint(1, 6)]), preserve_symmetry=symmetric,
                   noise_dropout=rng.choice([0.0, 0.1]) if symmetric else 0.0)


@register("quantizer", "fsq")
class FSQuantizer(Quantizer):
    """FSQ: latents ``(B, N, D)`` -> codes ``(B, N, D)`` on the level grid and indices ``(B, N)``.

    Wraps ``vector_quantize_pytorch.FSQ`` (as ``self.fsq``). Rounding passes
    gradients straight through; ``loss`` is zero; ``stats`` holds ``usage`` and
    ``perplexity``. Codes have the latents' dtype (the rounding runs in fp32).

    Args:
        config: [`FSQConfig`][tokenkit.quantizers.fsq.FSQConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> fsq = tk.build_part("quantizer", tk.Part("fsq", levels=(8, 5, 5, 5))).eval()
        >>> fsq.codebook_size
        1000
        >>> out = fsq(torch.randn(2, 3, 4))
        >>> torch.equal(fsq.lookup(out.indices), out.codes)
        True
    """

    Config = FSQConfig
    codes_are_fixed_points = False
    """Quantizing ``forward(...).codes`` again does not in general give back the same ids: codes
    live in the bounded space and would be bounded (``tanh``) a second time."""

    def __init__(self, config: FSQConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import FSQ

        self.config = config
        self.codebook_size = config.codebook_size
        self.fsq = build_library_module(lambda: FSQ(
            levels=list(config.levels), dim=config.in_dim, preserve_symmetry=config.preserve_symmetry,
            noise_dropout=config.noise_dropout))

    def codebook(self) -> torch.Tensor:
        """The implicit ``(K, len(levels))`` codebook (before the output projection, if any)."""
        return self.fsq.implicit_codebook

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize ``latents`` ``(B, N, D)``; see [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]."""
        codes, indices = self.fsq(latents)
        indices = indices.long()
        loss = latents.new_zeros(())
        return QuantizerOutput(codes.to(latents.dtype), indices, loss, codebook_stats(indices, self.codebook_size))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for token ids: ``(B, N)`` int64 -> ``(B, N, D)`` (equal to ``forward(...).codes`` in eval mode)."""
        return self.fsq.project_out(self.codebook()[indices])
