"""Residual vector quantization: ``vector_quantize_pytorch.ResidualVQ``.

"SoundStream: An End-to-End Neural Audio Codec" (Algorithm 1),
https://arxiv.org/abs/2107.03312; the wrapped implementation is
https://github.com/lucidrains/vector-quantize-pytorch.

``Q`` EMA codebooks (as ``vq-ema``) quantize the latent, then what the first
left, then what that left, and so on; the code is the sum of the ``Q`` picks.

Index layout:
    A token has one id per level: indices are ``(B, N, Q)`` int64, level
    ``q`` on the last axis, coarse to fine (``[..., 0]`` is the first residual
    codebook), each in ``[0, K)``. The quantizer exposes ``num_codebooks = Q``;
    [`Tokenizer.tokenize`][tokenkit.models.tokenizer.Tokenizer.tokenize] returns
    and ``detokenize`` takes this layout, and ``bits_per_image`` is
    ``N * Q * log2(K)``. With ``quantize_dropout``, training-mode ids of the
    dropped (finest) levels are ``-1``.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F

from tokenkit.contracts import QuantizerOutput
from tokenkit.errors import ContractError
from tokenkit.kinds import Quantizer
from tokenkit.quantizers.stats import codebook_stats
from tokenkit.quantizers.vq_ema import EMACodebookOptions
from tokenkit.quantizers.vqpytorch import build_library_module, exact_codes, nearest, training_call, warn_uninitialised
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class RVQConfig(EMACodebookOptions):
    """Options of the ``rvq`` quantizer; each level is an EMA vector quantizer as ``vq-ema``
    (the codebook options are per level: ``codebook_size`` codes per level, ...)."""

    codebook_size: int = 1024
    """Codes ``K`` per level."""
    num_quantizers: int = 4
    """Levels ``Q`` (ids per token)."""
    quantize_dropout: bool = False
    """In training, stop after a random number of levels (so that coarse prefixes decode); the ids of the
    dropped levels are then ``-1``."""
    quantize_dropout_cutoff_index: int = 0
    """Levels ``0..cutoff`` are never dropped."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive_ints(self, "num_quantizers")
        if not 0 <= self.quantize_dropout_cutoff_index < self.num_quantizers:
            raise ValueError(f"quantize_dropout_cutoff_index must be in [0, num_quantizers), "
                             f"got {self.quantize_dropout_cutoff_index}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> RVQConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        dim = rng.randint(1, 8)
        codebook_dim = rng.choice([None, rng.randint(1, 4)])
        book_dim = dim if codebook_dim is None else codebook_dim
        num_quantizers = rng.randint(2, 4)
        return cls(num_quantizers=num_quantizers, codebook_size=rng.randint(2, 16), dim=dim,
                   codebook_dim=codebook_dim, decay=rng.choice([0.5, 0.99]),
                   use_cosine_sim=book_dim >= 2 and rng.random() < 0.3,
                   threshold_ema_dead_code=rng.choice([0.0, 1.0]), kmeans_init=rng.random() < 0.5,
                   kmeans_iters=rng.randint(1, 3), rotation_trick=rng.random() < 0.5,
                   quantize_dropout=rng.random() < 0.3,
                   quantize_dropout_cutoff_index=rng.randint(0, num_quantizers - 1))


@register("quantizer", "rvq")
class ResidualVQuantizer(Quantizer):
    """Residual VQ: latents ``(B, N, D)`` -> codes ``(B, N, D)`` and indices ``(B, N, Q)``.

    Wraps ``vector_quantize_pytorch.ResidualVQ`` (as ``self.rvq``); see the
    module docstring for the index layout. EMA updates, dead-code replacement,
    k-means init and quantize dropout happen in training mode only, in the
    library's forward. Eval mode runs the residual search on the same
    codebooks itself (deterministic, batch-independent, no state change) and
    returns ``codes == lookup(indices)`` with a straight-through gradient.
    ``loss`` is the weighted commitment loss summed over the levels. ``stats``:
    ``usage`` and ``perplexity`` are computed per level (over that level's
    ``K`` codes) and *averaged over the levels*; ``commitment_loss`` is the
    unweighted sum over levels, detached.

    Attributes:
        num_codebooks: ``Q``, ids per token.

    Args:
        config: [`RVQConfig`][tokenkit.quantizers.rvq.RVQConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> rvq = tk.build_part("quantizer", tk.Part("rvq", num_quantizers=3, codebook_size=16, dim=4)).eval()
        >>> out = rvq(torch.randn(2, 5, 4))
        >>> out.indices.shape  # (B, N, Q)
        torch.Size([2, 5, 3])
        >>> torch.equal(rvq.lookup(out.indices), out.codes)
        True
    """

    Config = RVQConfig
    codes_are_fixed_points = False
    """Quantizing ``forward(...).codes`` again does not in general give back the same ids: the
    first level searches the sum of all levels' codes, not the latent."""

    def __init__(self, config: RVQConfig) -> None:
        super().__init__()
        from vector_quantize_pytorch import ResidualVQ

        self.config = config
        self.codebook_size = config.codebook_size
        self.num_codebooks = config.num_quantizers
        self.rvq = build_library_module(lambda: ResidualVQ(
            dim=config.dim, num_quantizers=config.num_quantizers, codebook_size=config.codebook_size,
            codebook_dim=config.codebook_dim, decay=config.decay, commitment_weight=config.commitment_weight,
            use_cosine_sim=config.use_cosine_sim, threshold_ema_dead_code=config.threshold_ema_dead_code,
            kmeans_init=config.kmeans_init, kmeans_iters=config.kmeans_iters,
            rotation_trick=config.rotation_trick and config.book_dim > 1,
            quantize_dropout=config.quantize_dropout,
            quantize_dropout_cutoff_index=config.quantize_dropout_cutoff_index))

    def codebook(self) -> torch.Tensor:
        """The ``(Q, K, codebook_dim)`` codebooks (before the output projection, if any)."""
        return self.rvq.codebooks

    def level_stats(self, indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """``usage`` and ``perplexity`` of each level, averaged over the levels (levels dropped by
        quantize dropout, all ``-1``, are left out)."""
        per_level = [codebook_stats(level[level >= 0], self.codebook_size) for level in indices.unbind(-1)
                     if not (self.training and self.config.quantize_dropout) or bool((level >= 0).any())]
        return {key: torch.stack([s[key] for s in per_level]).mean() for key in ("usage", "perplexity")}

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize ``latents`` ``(B, N, D)``; see [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]."""
        if not self.training:
            return self._search(latents)
        with training_call(self.rvq, self.config.kmeans_init):
            quantized, indices, losses = self.rvq(latents)
        indices = indices.long()
        loss = losses.sum()
        stats = {"commitment_loss": (loss / self.config.commitment_weight if self.config.commitment_weight else
                                     loss).detach().float(), **self.level_stats(indices)}
        return QuantizerOutput(quantized.to(latents.dtype), indices, loss, stats)

    def _search(self, latents: torch.Tensor) -> QuantizerOutput:
        """Eval mode: the residual search on the library's codebooks, no state change (see ``vqpytorch.nearest``).

        ``loss`` is the weighted commitment loss summed over levels (the library
        returns 0 in eval mode); codes equal ``lookup(indices)`` and pass gradients straight through.
        """
        warn_uninitialised(self.rvq, self.config.kmeans_init, "rvq")
        x = self.rvq.project_in(latents)
        residual, ids, commitment = x, [], x.new_zeros(())
        for layer in self.rvq.layers:  # each level: a VectorQuantize without projections
            r = layer._codebook.transform_input(residual)  # l2-normalised for cosine similarity
            book = layer.codebook
            level_ids = nearest(r, book, self.config.use_cosine_sim)
            picked = book[level_ids].to(r.dtype)
            commitment = commitment + F.mse_loss(picked, r)
            residual = residual - picked
            ids.append(level_ids)
        indices = torch.stack(ids, dim=-1)
        codes = exact_codes(self.lookup(indices), self.rvq.project_out(x))
        stats = {"commitment_loss": commitment.detach().float(), **self.level_stats(indices)}
        return QuantizerOutput(codes.to(latents.dtype), indices, self.config.commitment_weight * commitment, stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for token ids: ``(B, N, Q)`` int64 -> ``(B, N, D)`` (equal to ``forward(...).codes`` in eval mode).

        With ``quantize_dropout``, fewer than ``Q`` levels (a coarse prefix ``[..., :q]``) decode too.

        Raises:
            ContractError: The last axis is not the ``Q`` levels.
        """
        levels = indices.shape[-1] if indices.ndim >= 3 else None
        if levels is None or levels > self.num_codebooks or (levels < self.num_codebooks
                                                             and not self.config.quantize_dropout):
            raise ContractError(f"rvq ids must have shape (B, N, {self.num_codebooks}) (one id per token and level), "
                                f"got ({', '.join(str(s) for s in indices.shape)})")
        return self.rvq.get_output_from_indices(indices)
