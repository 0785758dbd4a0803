"""The [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] composition:
``encoder -> quantizer -> decoder [-> pixel_decoder]``."""

from __future__ import annotations

import math

import torch
from torch import nn

from tokenkit.contracts import QuantizerOutput, TokenizerOutput, check_images, check_indices, check_tokens
from tokenkit.errors import ContractError
from tokenkit.factory import instantiate, on_device
from tokenkit.mixins import PretrainedMixin
from tokenkit.specs import TokenizerSpec


class Tokenizer(PretrainedMixin, nn.Module):
    """An image tokenizer assembled from registered parts.

    Build it with [`tokenkit.build`][tokenkit.build] or
    [`Tokenizer.from_spec`][tokenkit.models.tokenizer.Tokenizer.from_spec].
    Images are ``(B, C, H, W)`` floats in [0, 1]; token ids are ``(B, N)`` int64.

    Index layout: a quantizer with several codebooks per token (``num_codebooks
    = Q > 1``, e.g. ``rvq``) gives one id per token and codebook level, so its
    ids are ``(B, N, Q)`` int64, level on the last axis (coarse to fine), each
    in ``[0, K)``; ``tokenize`` returns and ``detokenize`` takes that layout.

    Attributes:
        spec: The composition this tokenizer was built from.
        encoder: images -> latents ``(B, N, D)``.
        quantizer: latents -> codes ``(B, N, D')`` (+ indices).
        decoder: codes -> images, or proxy-code logits.
        pixel_decoder: Optional proxy-code logits -> images (TiTok stage 2), or ``None``.

    Example:
        >>> import torch, tokenkit as tk
        >>> tok = tk.build("titok-tiny")
        >>> images = torch.rand(2, 3, 32, 32)
        >>> ids = tok.tokenize(images)
        >>> ids.shape, ids.dtype
        (torch.Size([2, 8]), torch.int64)
        >>> tok.detokenize(ids).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(self, spec: TokenizerSpec, encoder: nn.Module, quantizer: nn.Module, decoder: nn.Module,
                 pixel_decoder: nn.Module | None = None) -> None:
        super().__init__()
        self.spec = spec
        configs = spec.resolve()
        self._enc_cfg = configs["encoder"]
        self._dec_cfg = configs["decoder"]
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.pixel_decoder = pixel_decoder
        self.code_dim: int = configs["quantizer"].out_dim

    @classmethod
    def from_spec(cls, spec: TokenizerSpec, *, device: torch.device | str | None = None) -> Tokenizer:
        """Build every part of ``spec`` (random init) on ``device``."""
        configs = spec.resolve()
        with on_device(device):
            parts = {
                kind: None if configs[kind] is None else instantiate("decoder" if kind == "pixel_decoder" else kind,
                                                                    getattr(spec, kind).name, configs[kind])
                for kind in ("encoder", "quantizer", "decoder", "pixel_decoder")
            }
        return cls(spec, **parts)

    # ---- properties -------------------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        """Tokens per image ``N``."""
        return self._enc_cfg.num_tokens

    @property
    def image_size(self) -> int:
        """Input height and width."""
        return self._enc_cfg.image_size

    @property
    def in_channels(self) -> int:
        """Image channels."""
        return getattr(self._enc_cfg, "in_channels", 3)

    @property
    def codebook_size(self) -> int | None:
        """Codebook size ``K``, or ``None`` for a continuous bottleneck."""
        return getattr(self.quantizer, "codebook_size", None)

    @property
    def num_codebooks(self) -> int:
        """Ids per token ``Q`` (the quantizer's ``num_codebooks``; 1 when it has none)."""
        return getattr(self.quantizer, "num_codebooks", 1)

    @property
    def bits_per_image(self) -> float | None:
        """``N * Q * log2(K)`` for a discrete bottleneck, ``None`` for a continuous one."""
        k = self.codebook_size
        return None if k is None else self.num_tokens * self.num_codebooks * math.log2(k)

    # ---- API --------------------------------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        return check_images(images, channels=self.in_channels, image_size=self.image_size,
                            patch_size=getattr(self._enc_cfg, "patch_size", None))

    def encode(self, images: torch.Tensor) -> QuantizerOutput:
        """Encode and quantize.

        Args:
            images: ``(B, C, H, W)`` float in [0, 1].

        Returns:
            [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]: codes ``(B, N, D')``,
            indices ``(B, N)`` (``(B, N, Q)`` with ``Q > 1`` codebooks; ``None`` if continuous), loss, stats.

        Raises:
            ContractError: Wrong rank, channels, size, dtype or value range.
        """
        latents = self.encoder(self._check_images(images))
        return self.quantizer(latents)

    @property
    def supports_prefix(self) -> bool:
        """Whether a prefix of the tokens can be decoded (a ``tail-drop`` bottleneck)."""
        return bool(getattr(self.quantizer, "supports_prefix", False))

    def _length(self, tokens: torch.Tensor, rank: int) -> int:
        """Token count to expect: ``N``, or the given prefix length when the bottleneck supports prefixes."""
        if self.supports_prefix and tokens.ndim == rank and 1 <= tokens.shape[1] <= self.num_tokens:
            return tokens.shape[1]
        return self.num_tokens

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Decode codes ``(B, N, D')`` to images ``(B, C, H, W)`` (not clamped).

        With a prefix-capable bottleneck (``tail-drop``) ``codes`` may hold the
        first ``k <= N`` tokens; the tail is filled with its mask code. For a
        two-stage composition without pixel decoder (stage 1) the result is the
        decoder's proxy-code logits ``(B, L, K)``.
        """
        codes = check_tokens(codes, "codes", dim=self.code_dim, num_tokens=self._length(codes, 3))
        if codes.shape[1] < self.num_tokens:
            codes = self.quantizer.pad_codes(codes, self.num_tokens)
        out = self.decoder(codes)
        if self.pixel_decoder is not None:
            out = self.pixel_decoder(out)
        return out

    @torch.no_grad()
    def tokenize(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> token ids ``(B, N)`` int64 (``(B, N, Q)`` with ``Q > 1`` codebooks).

        Raises:
            ContractError: Bad images, or a continuous bottleneck (use ``encode``).
        """
        if self.codebook_size is None:
            raise ContractError(f"quantizer {self.spec.quantizer.name!r} is continuous and has no token ids; "
                                "use encode(images).codes")
        return self.encode(images).indices

    @torch.no_grad()
    def detokenize(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids ``(B, N)`` (or the official ``(B, 1, N)``; ``(B, N, Q)`` with ``Q > 1`` codebooks)
        -> images ``(B, C, H, W)`` clamped to [0, 1].

        With a prefix-capable bottleneck (``tail-drop``) the first ``k <= N`` ids decode too.

        Raises:
            ContractError: Wrong shape (e.g. ``(B, N)`` for a ``Q > 1`` quantizer) or dtype, ids outside
                the codebook, a continuous bottleneck, or a stage-1 composition that cannot produce pixels.
        """
        if self.codebook_size is None:
            raise ContractError(f"quantizer {self.spec.quantizer.name!r} is continuous and has no token ids; "
                                "use decode(codes)")
        if self.pixel_decoder is None and getattr(self.decoder, "output_kind", "images") != "images":
            raise ContractError("this composition decodes to proxy-code logits (stage 1); "
                                "add a pixel_decoder to get images")
        indices = check_indices(indices, num_tokens=self._length(indices, 2 + (self.num_codebooks > 1)),
                                codebook_size=self.codebook_size, num_codebooks=self.num_codebooks)
        return self.decode(self.quantizer.lookup(indices)).clamp(0.0, 1.0)

    def forward(self, images: torch.Tensor) -> TokenizerOutput:
        """Encode, quantize and decode; see [`TokenizerOutput`][tokenkit.contracts.TokenizerOutput]."""
        q = self.encode(images)
        return TokenizerOutput(self.decode(q.codes), q.indices, q.codes, q.loss, q.stats)
