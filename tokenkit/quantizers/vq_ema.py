"""Vector quantizer with an EMA-updated codebook: ``vector_quantize_pytorch.VectorQuantize``.

"Neural Discrete Representation Learning" (VQ-VAE, EMA updates in its appendix),
https://arxiv.org/abs/1711.00937; the wrapped implementation is
https://github.com/lucidrains/vector-quantize-pytorch.

The codebook is a buffer updated by exponential moving averages of the latents
assigned to each code (training mode only), optionally initialised by k-means
on the first training batch and with dead codes (EMA cluster size below a
threshold) replaced by latents of the batch. Only the commitment loss reaches
the encoder; the codebook gets no gradient.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.quantizers.base import SameWidth
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.quantizers.vqpytorch import build_library_module, exact_codes, nearest, training_call, warn_uninitialised
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class EMACodebookOptions(SameWidth):
    """Options shared by the EMA vector quantizers (``vq-ema`` and each level of ``rvq``)."""

    codebook_size: int = 4096
    """Number of codes ``K``."""
    dim: int = 12
    """Latent and code width (``in_dim`` = ``out_dim``)."""
    codebook_dim: int | None = None
    """Width of the codebook; ``None`` = ``dim``. Another value adds linear projections in and out
    (a low-dimensional codebook, as in ViT-VQGAN)."""
    decay: float = 0.99
    """EMA decay of the codebook (VQ-VAE's 0.99; the library's default is 0.8, faster moving)."""
    commitment_weight: float = 0.25
    """Weight of the commitment loss ``||z - sg(z_q)||^2`` (VQ-VAE's beta; the library's default is 1)."""
    use_cosine_sim: bool = False
    """Search by cosine similarity: l2-normalised latents and codebook (codes are unit vectors)."""
    threshold_ema_dead_code: float = 0.0
    """Replace codes whose EMA cluster size falls below this by random latents of the batch (0 = never)."""
    kmeans_init: bool = False
    """Initialise the codebook by k-means on the first training batch (it is all zeros until then)."""
    kmeans_iters: int = 10
    """Iterations of that k-means."""
    rotation_trick: bool = True
    """Pass gradients by the rotation trick (https://arxiv.org/abs/2410.06424) instead of the plain
    straight-through estimator; ignored for a codebook of width 1."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", "dim", "kmeans_iters", optional=("codebook_dim",))
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}")
        for name in ("commitment_weight", "threshold_ema_dead_code"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.use_cosine_sim and self.book_dim < 2:
            raise ValueError("use_cosine_sim needs a codebook width >= 2 (unit vectors of width 1 are just signs, "
                             "with no gradient)")

    @property
    def book_dim(self) -> int:
        """Width of the codebook rows (``codebook_dim``, else ``dim``)."""
        return self.dim if self.codebook_dim is None else self.codebook_dim


@dataclasses.dataclass(frozen=True)
class VQEMAConfig(EMACodebookOptions):
    """Options of the ``vq-ema`` quantizer (those of ``VectorQuantize`` that make sense for a tokenizer)."""

    stochastic_sample_codes: bool = False
    """In training, sample codes from the softmax over distances (Gumbel) instead of taking the nearest;
    eval mode always takes the nearest."""
    sample_codebook_temp: float = 1.0
    """Temperature of that sampling."""
    codebook_diversity_loss_weight: float = 0.0
    """Weight of an extra loss rewarding the entropy of the average code assignment (training)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.codebook_diversity_loss_weight < 0:
            raise ValueError(f"codebook_diversity_loss_weight must be >= 0, got {self.codebook_diversity_loss_weight}")
        if self.sample_codebook_temp < 0:
            raise ValueError(f"sample_codebook_temp must be >= 0, got {self.sample_codebook_temp}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> VQEMAConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        dim = rng.randint(1, 8)
        codebook_dim = rng.choice([None, rng.randint(1, 4)])
        book_dim = dim if codebook_dim is None else codebook_dim
        return cls(codebook_size=rng.randint(2, 32), dim=dim, codebook_dim=codebook_dim,
                   decay=rng.choice([0.5, 0.8, 0.99]), use_cosine_sim=book_dim >= 2 and rng.random() < 0.5,
                   threshold_ema_dead_code=rng.choice([0.0, 1.0, 2.0]), kmeans_init=rng.random() < 0.5,
                   kmeans_iters=rng.randint(1, 3), rotation_trick=rng.random() < 0.5,
                   stochastic_sample_codes=rng.random() < 0.3,
                   codebook_diversity_loss_weight=rng.choice([0.0, 0.1]))


@register("quantizer", "vq-ema")
class VQEMAQuantizer(Quantizer):
    """EMA vector quantizer: latents ``(B, N, D)`` -> codes ``(B, N, D)`` and indices ``(B, N)``.

    Wraps ``vector_quantize_pytorch.VectorQuantize`` (as ``self.vq``). The EMA
    update, dead-code replacement and k-means init happen in training mode
    only, in the library's forward. Eval mode searches the same codebook
    itself (deterministic, batch-independent, no state change) and returns
    ``codes == lookup(indices)`` with a straight-through gradient; ``loss`` is
    then the weighted commitment loss. ``stats`` holds ``usage``,
    ``perplexity`` and ``commitment_loss`` (unweighted, detached).

    Args:
        config: [`VQEMAConfig`][tokenkit.quantizers.vq_ema.VQEMAConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> vq = tk.build_part("quantizer", tk.Part("vq-ema", codebook_size=16, dim=4))
        >>> out = vq(torch.randn(2, 3, 4))  # training mode: the codebook moves
        >>> out = vq.eval()(torch.randn(2, 3, 4))
        >>> out.codes.shape, out.indices.shape
        (torch.Size([2, 3, 4]), torch.Size([2, 3]))
        >>> torch.equal(vq.lookup(out.indices), out.codes)
        True
    """

    Config = VQEMAConfig

    def __init__(self, config: VQEMAConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import VectorQuantize

        self.config = config
        self.codebook_size = config.codebook_size
        self.vq = build_library_module(lambda: VectorQuantize(
            dim=config.dim, codebook_size=config.codebook_size, codebook_dim=config.codebook_dim,
            decay=config.decay, commitment_weight=config.commitment_weight, use_cosine_sim=config.use_cosine_sim,
            threshold_ema_dead_code=config.threshold_ema_dead_code, kmeans_init=config.kmeans_init,
            kmeans_iters=config.kmeans_iters, rotation_trick=config.rotation_trick and config.book_dim > 1,
            stochastic_sample_codes=config.stochastic_sample_codes, sample_codebook_temp=config.sample_codebook_temp,
            codebook_diversity_loss_weight=config.codebook_diversity_loss_weight,
        ))

    @property
    def codes_are_fixed_points(self) -> bool:
        """Whether quantizing ``forward(...).codes`` again (eval mode) gives back the same ids: yes,
        unless ``codebook_dim`` adds projections (a linear map in after one out is not the identity)."""
        return not self.vq.has_projections

    def codebook(self) -> torch.Tensor:
        """The ``(K, codebook_dim)`` codebook (before the output projection, if any)."""
        return self.vq.codebook

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize ``latents`` ``(B, N, D)``; see [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]."""
        if not self.training:
            return self._search(latents)
        with training_call(self.vq, self.config.kmeans_init):
            quantized, indices, loss, breakdown = self.vq(latents, return_loss_breakdown=True)
        indices = indices.long()
        stats = {"commitment_loss": breakdown.commitment.detach().float(),
                 **codebook_stats(indices, self.codebook_size)}
        if self.config.codebook_diversity_loss_weight > 0:
            stats["codebook_diversity_loss"] = breakdown.codebook_diversity.detach().float()
        return QuantizerOutput(quantized.to(latents.dtype), indices, loss.sum(), stats)

    def _search(self, latents: torch.Tensor) -> QuantizerOutput:
        """Eval mode: nearest code on the library's codebook, no state change (see ``vqpytorch.nearest``).

        ``loss`` is the weighted commitment loss (the library returns 0 in eval mode);
        codes equal ``lookup(indices)`` and pass gradients straight through.
        """
        warn_uninitialised(self.vq, self.config.kmeans_init, "vq-ema")
        x = self.vq._codebook.transform_input(self.vq.project_in(latents))  # l2-normalised for cosine similarity
        book = self.codebook()
        indices = nearest(x, book, self.config.use_cosine_sim)
        commitment = F.mse_loss(book[indices].to(x.dtype), x)
        codes = exact_codes(self.lookup(indices), self.vq.project_out(x))
        stats = {"commitment_loss": commitment.detach().float(), **codebook_stats(indices, self.codebook_size)}
        return QuantizerOutput(codes.to(latents.dtype), indices, self.config.commitment_weight * commitment, stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for token ids: ``(B, N)`` int64 -> ``(B, N, D)`` (equal to ``forward(...).codes`` in eval mode)."""
        return self.vq.get_output_from_indices(indices)
