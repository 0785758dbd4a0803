"""The [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] composition:
``encoder -> quantizer -> decoder [-> pixel_decoder]``."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from tokenkit.contracts import (
    QuantizerOutput,
    TextEmbeddings,
    TokenizerOutput,
    check_images,
    check_indices,
    check_prompts,
    check_tokens,
)
from tokenkit.errors import ContractError
from tokenkit.factory import instantiate, on_device
from tokenkit.models.compile import compile_modules
from tokenkit.specs import TokenizerSpec
from tokenkit.validation import image_shape
from tokenkit.weights.model_files import SaveMixin


def batch_slices(n: int, batch_size: int | None) -> Iterator[slice]:
    """Consecutive slices of ``range(n)`` of at most ``batch_size`` (one slice for ``None``).

    Raises:
        ContractError: ``batch_size`` is not a positive int.

    Examples:
        >>> list(batch_slices(5, 2))
        [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    if batch_size is None:
        yield slice(0, n)
        return
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ContractError(f"batch_size must be a positive int or None, got {batch_size!r}")
    for start in range(0, max(n, 1), batch_size):
        yield slice(start, min(n, start + batch_size))


def map_batches(fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int | None, *,
                inference: bool = False,
                finish: Callable[[torch.Tensor, torch.Tensor], Any] | None = None) -> torch.Tensor:
    """``fn`` over ``inputs`` in chunks of ``batch_size`` along the first axis, results concatenated.

    Without autograd every chunk result is written into one output allocated
    when the first chunk is done, so the memory above the inputs and that output
    is the working memory of one chunk, whatever the number of inputs (no list
    of chunk results, no ``torch.cat`` copy). With autograd the chunks are
    concatenated with ``torch.cat`` so that gradients flow.

    Args:
        fn: ``(b, ...) -> (b, ...)`` for a chunk of ``b`` inputs.
        inputs: ``(B, ...)``.
        batch_size: Chunk size, or ``None`` for one call.
        inference: Run ``fn`` under ``torch.inference_mode``. The returned tensor is
            still an ordinary tensor (allocated outside inference mode): usable in
            autograd and in in-place operations afterwards.
        finish: ``finish(chunk_result, out_slice)`` writes a chunk result into its
            slice of the output (default: ``out_slice.copy_(chunk_result)``).

    Returns:
        ``(B, ...)``.

    Examples:
        >>> import torch
        >>> x = torch.arange(10.0)
        >>> map_batches(lambda chunk: chunk * 2, x, batch_size=4)
        tensor([ 0.,  2.,  4.,  6.,  8., 10., 12., 14., 16., 18.])
    """
    slices = list(batch_slices(inputs.shape[0], batch_size))
    if len(slices) == 1 and not inference:
        return fn(inputs)
    if torch.is_grad_enabled() and not inference:
        return torch.cat([fn(inputs[sl]) for sl in slices])
    out: torch.Tensor | None = None
    for sl in slices:
        with torch.inference_mode() if inference else contextlib.nullcontext():
            y = fn(inputs[sl])
        if out is None:
            out = torch.empty((inputs.shape[0], *y.shape[1:]), dtype=y.dtype, device=y.device)
        if finish is None:
            out[sl].copy_(y)
        else:
            finish(y, out[sl])
        del y  # free the chunk result before the next chunk runs
    return out


def merge_outputs(chunks: list[tuple[slice, QuantizerOutput]]) -> QuantizerOutput:
    """One [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput] from per-chunk outputs.

    Codes and indices are concatenated (``None`` stays ``None``); ``loss`` and each
    ``stats`` value are the means weighted by chunk size.
    """
    sizes = [sl.stop - sl.start for sl, _ in chunks]
    total = float(sum(sizes))

    def mean(values: list[torch.Tensor]) -> torch.Tensor:
        return sum(v * (n / total) for v, n in zip(values, sizes, strict=True))

    outs = [q for _, q in chunks]
    codes = None if outs[0].codes is None else torch.cat([q.codes for q in outs])
    indices = None if outs[0].indices is None else torch.cat([q.indices for q in outs])
    stats = {k: mean([q.stats[k] for q in outs]) for k in outs[0].stats}
    return QuantizerOutput(codes, indices, mean([q.loss for q in outs]), stats)


class Tokenizer(SaveMixin, nn.Module):
    """An image tokenizer assembled from registered parts.

    Build it with [`tokenkit.build`][tokenkit.build] or
    [`Tokenizer.from_spec`][tokenkit.models.tokenizer.Tokenizer.from_spec].
    Images are ``(B, C, H, W)`` floats in [0, 1]; token ids are ``(B, N)`` int64.

    Clamping: the training path (``forward``, ``decode``) returns the decoder's raw output, not
    clamped, so that losses keep their gradients at saturated pixels; the inference path that
    ends in images for people (``detokenize``, and the CLI / pipelines built on it) clamps to
    [0, 1]. Clamp ``tok(images).images`` yourself to compare it with ``detokenize``'s output.

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
        text_encoder: Optional prompts -> text embeddings for a text-aware decoder (TA-TiTok), or ``None``.

    Text (TA-TiTok): a decoder built with ``text_dim`` reads text guidance; ``decode``, ``detokenize``
    and ``forward`` then take ``text=``: prompts (embedded by ``text_encoder``) or embeddings
    ``(B, L, text_dim)``. ``tokenize`` / ``encode`` never read text.

    Examples:
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
                 pixel_decoder: nn.Module | None = None, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.spec = spec
        configs = spec.resolve()
        self._enc_cfg = configs["encoder"]
        self._dec_cfg = configs["decoder"]
        self.encoder = encoder
        self.quantizer = quantizer
        self.decoder = decoder
        self.pixel_decoder = pixel_decoder
        self.text_encoder = text_encoder
        self.code_dim: int = configs["quantizer"].out_dim

    @classmethod
    def from_spec(cls, spec: TokenizerSpec, *, device: torch.device | str | None = None) -> Tokenizer:
        """Build every part of ``spec`` (random init) on ``device``."""
        configs = spec.resolve()
        with on_device(device):
            parts = {
                kind: None if configs[kind] is None else instantiate("decoder" if kind == "pixel_decoder" else kind,
                                                                    getattr(spec, kind).name, configs[kind])
                for kind in ("encoder", "quantizer", "decoder", "pixel_decoder", "text_encoder")
            }
        return cls(spec, **parts)

    # ---- properties -------------------------------------------------------------------------------------------
    @property
    def num_tokens(self) -> int:
        """Tokens per image ``N``."""
        return self._enc_cfg.num_tokens

    @property
    def image_size(self) -> int | tuple[int, int]:
        """Input size as configured: a side (square images) or ``(H, W)``; see ``image_shape``."""
        return self._enc_cfg.image_size

    @property
    def image_shape(self) -> tuple[int, int]:
        """Input ``(H, W)``.

        Examples:
            >>> import tokenkit as tk
            >>> tk.build("titok-tiny", device="meta").image_shape
            (32, 32)
            >>> tok = tk.build("titok-tiny", image_size=(32, 48), device="meta")
            >>> tok.image_size, tok.image_shape
            ((32, 48), (32, 48))
        """
        return image_shape(self.image_size)

    @property
    def in_channels(self) -> int:
        """Image channels."""
        return getattr(self._enc_cfg, "in_channels", 3)

    @property
    def codebook_size(self) -> int | None:
        """Codebook size ``K``, or ``None`` for a continuous bottleneck."""
        return self.quantizer.codebook_size

    @property
    def num_codebooks(self) -> int:
        """Ids per token ``Q`` (the quantizer's ``num_codebooks``)."""
        return self.quantizer.num_codebooks

    @property
    def bits_per_image(self) -> float | None:
        """``N * Q * log2(K)`` for a discrete bottleneck, ``None`` for a continuous one."""
        k = self.codebook_size
        return None if k is None else self.num_tokens * self.num_codebooks * math.log2(k)

    # ---- API --------------------------------------------------------------------------------------------------
    def _check_images(self, images: torch.Tensor) -> torch.Tensor:
        images = check_images(images, channels=self.in_channels, image_size=self.image_size,
                              patch_size=getattr(self._enc_cfg, "patch_size", None))
        return self._as_model_dtype(images)

    def _as_model_dtype(self, tensor: torch.Tensor) -> torch.Tensor:
        """A float input of another dtype (float16, float64, ...) cast to the weights' dtype."""
        weight = next(self.parameters(), None)
        if weight is None or not weight.is_floating_point() or tensor.dtype == weight.dtype:
            return tensor
        return tensor.to(weight.dtype)

    def encode(self, images: torch.Tensor, *, batch_size: int | None = None) -> QuantizerOutput:
        """Encode and quantize.

        Used in training too: it runs with autograd when it is on (wrap it in
        ``torch.no_grad()`` or use [`tokenize`][tokenkit.models.tokenizer.Tokenizer.tokenize] for inference).

        Args:
            images: ``(B, C, H, W)`` float in [0, 1].
            batch_size: Encode in chunks of this many images (bounded working memory,
                see [`map_batches`][tokenkit.models.tokenizer.map_batches]); ``None``: one batch.
                Codes and indices are those of one batch; ``loss`` and every ``stats``
                value are the chunk-size-weighted means of the per-chunk values (equal to
                the one-batch value for batch-mean losses; batch statistics such as
                ``usage`` / ``perplexity`` become per-chunk averages: compute them from the
                indices of all images with ``tokenkit.quantizers.stats.codebook_stats``).

        Returns:
            [`QuantizerOutput`][tokenkit.contracts.QuantizerOutput]: codes ``(B, N, D')``,
            indices ``(B, N)`` (``(B, N, Q)`` with ``Q > 1`` codebooks; ``None`` if continuous), loss, stats.

        Raises:
            ContractError: Wrong rank, channels, size, dtype or value range, or a bad ``batch_size``.

        Examples:
            >>> import torch, tokenkit as tk
            >>> tok = tk.build("titok-tiny")
            >>> images = torch.rand(5, 3, 32, 32)
            >>> with torch.no_grad():
            ...     q = tok.encode(images, batch_size=2)
            >>> q.codes.shape, q.indices.shape
            (torch.Size([5, 8, 8]), torch.Size([5, 8]))
        """
        images = self._check_images(images)
        slices = list(batch_slices(images.shape[0], batch_size))
        if len(slices) == 1:
            return self.quantizer(self.encoder(images))
        # Codes and indices are small next to the images: concatenating them costs little memory.
        return merge_outputs([(sl, self.quantizer(self.encoder(images[sl]))) for sl in slices])

    @property
    def supports_prefix(self) -> bool:
        """Whether a prefix of the tokens can be decoded (a ``tail-drop`` bottleneck)."""
        return self.quantizer.supports_prefix

    def _length(self, tokens: torch.Tensor, rank: int) -> int:
        """Token count to expect: ``N``, or the given prefix length when the bottleneck supports prefixes."""
        if self.supports_prefix and tokens.ndim == rank and 1 <= tokens.shape[1] <= self.num_tokens:
            return tokens.shape[1]
        return self.num_tokens

    @property
    def takes_text(self) -> bool:
        """Whether the decoder reads text guidance (TA-TiTok): ``decode`` / ``detokenize`` then need ``text=``."""
        return self.decoder.text_dim is not None

    def encode_text(self, prompts: str | list[str]) -> TextEmbeddings:
        """Embed prompts with the composition's ``text_encoder``.

        Raises:
            ContractError: Prompts that are not strings, or no ``text_encoder`` in the composition.
        """
        if self.text_encoder is None:
            raise ContractError(
                f"decoder {self.spec.decoder.name!r} is text-aware (text_dim={self.decoder.text_dim}) but this "
                "composition has no text_encoder part to embed prompts: build it with text_encoder=tk.Part("
                "'openclip', ...) (the tatitok-* models have one), or pass text embeddings "
                f"(B, {self._dec_cfg.text_length}, {self.decoder.text_dim})")
        return self.text_encoder(check_prompts(prompts))

    def _text_guidance(self, text: object, batch: int) -> torch.Tensor | None:
        """``text`` (prompts, ``TextEmbeddings`` or a tensor) as the decoder's guidance ``(B, L, text_dim)``."""
        if not self.takes_text:
            if text is not None:
                raise ContractError(f"decoder {self.spec.decoder.name!r} takes no text (built without text_dim); "
                                    "drop text=, or compose a text-aware decoder (e.g. tk.build('tatitok-bl32-vq'))")
            return None
        if text is None:
            raise ContractError(f"decoder {self.spec.decoder.name!r} is text-aware: pass text= (one prompt, "
                                f"{batch} prompts, or embeddings (B, {self._dec_cfg.text_length}, "
                                f"{self.decoder.text_dim}))")
        if isinstance(text, (str, list, tuple)) and not isinstance(text, TextEmbeddings):
            prompts = check_prompts(text)
            if len(prompts) == 1 and batch > 1:
                return self.encode_text(prompts).tokens.expand(batch, -1, -1)
            text = self.encode_text(check_prompts(prompts, batch))
        if isinstance(text, TextEmbeddings):
            text = text.tokens
        if not isinstance(text, torch.Tensor):
            raise ContractError(f"text must be prompts (str or list of str), TextEmbeddings or a tensor, got "
                                f"{type(text).__name__}")
        if text.ndim == 3 and text.shape[0] != batch:
            raise ContractError(f"text embeddings for {text.shape[0]} images, codes for {batch}")
        return self._as_model_dtype(text) if text.is_floating_point() else text

    def decode(self, codes: torch.Tensor, *, text: object = None, batch_size: int | None = None) -> torch.Tensor:
        """Decode codes ``(B, N, D')`` to images ``(B, C, H, W)`` (not clamped).

        With a prefix-capable bottleneck (``tail-drop``) ``codes`` may hold the
        first ``k <= N`` tokens; the tail is filled with its mask code. For a
        two-stage composition without pixel decoder (stage 1) the result is the
        decoder's proxy-code logits ``(B, L, K)``.

        Used in training too: it runs with autograd when it is on; for inference use
        [`detokenize`][tokenkit.models.tokenizer.Tokenizer.detokenize] or ``torch.no_grad()``.

        Args:
            codes: ``(B, N, D')`` (``(B, k, D')`` prefix with a ``tail-drop`` bottleneck).
            text: For a text-aware decoder only (see [`takes_text`][tokenkit.models.tokenizer.Tokenizer.takes_text]):
                one prompt (for every image), ``B`` prompts, [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings]
                or embeddings ``(B, L, text_dim)``.
            batch_size: Decode in chunks of this many (bounded working memory without
                autograd, see [`map_batches`][tokenkit.models.tokenizer.map_batches]); ``None``: one batch.

        Raises:
            ContractError: Wrong shape or dtype, a bad ``batch_size``, or text missing, unexpected or malformed.
        """
        codes = check_tokens(codes, "codes", dim=self.code_dim, num_tokens=self._length(codes, 3))
        guidance = self._text_guidance(text, codes.shape[0])
        if guidance is None:
            return map_batches(self._decode, self._as_model_dtype(codes), batch_size)
        codes = self._as_model_dtype(codes)
        rows = torch.arange(codes.shape[0], device=codes.device)
        return map_batches(lambda chunk: self._decode(codes[chunk], guidance[chunk]), rows, batch_size)

    def _decode(self, codes: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        if codes.shape[1] < self.num_tokens:
            codes = self.quantizer.pad_codes(codes, self.num_tokens)
        out = self.decoder(codes) if text is None else self.decoder(codes, text)
        if self.pixel_decoder is not None:
            grid = getattr(self.decoder, "grid_shape", None)
            if grid is not None and grid[0] != grid[1]:  # a square grid is the pixel decoder's default
                out = self.pixel_decoder(out, grid=tuple(grid))
            else:
                out = self.pixel_decoder(out)
        return out

    def tokenize(self, images: torch.Tensor, *, batch_size: int | None = None) -> torch.Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] -> token ids ``(B, N)`` int64 (``(B, N, Q)`` with ``Q > 1`` codebooks).

        Inference only: runs under ``torch.inference_mode`` (no autograd) and returns an
        ordinary tensor (usable afterwards in autograd, e.g. as a loss target, and in
        in-place operations).

        Args:
            images: ``(B, C, H, W)`` float in [0, 1].
            batch_size: Tokenize in chunks of this many images; the ids are those of one
                batch and the working memory is that of one chunk whatever ``B`` is
                (see [`map_batches`][tokenkit.models.tokenizer.map_batches]). ``None``: one batch.

        Raises:
            ContractError: Bad images or ``batch_size``, or a continuous bottleneck (use ``encode``).

        Examples:
            >>> import torch, tokenkit as tk
            >>> tok = tk.build("titok-tiny")
            >>> images = torch.rand(5, 3, 32, 32)
            >>> ids = tok.tokenize(images, batch_size=2)
            >>> ids.shape, torch.equal(ids, tok.tokenize(images))
            (torch.Size([5, 8]), True)
        """
        if self.codebook_size is None:
            raise ContractError(f"quantizer {self.spec.quantizer.name!r} is continuous and has no token ids; "
                                "use encode(images).codes")
        images = self._check_images(images)
        return map_batches(lambda chunk: self.encode(chunk).indices, images, batch_size, inference=True)

    def detokenize(self, indices: torch.Tensor, *, text: object = None, batch_size: int | None = None
                   ) -> torch.Tensor:
        """Token ids ``(B, N)`` (or the official ``(B, 1, N)``; ``(B, N, Q)`` with ``Q > 1`` codebooks)
        -> images ``(B, C, H, W)`` clamped to [0, 1].

        With a prefix-capable bottleneck (``tail-drop``) the first ``k <= N`` ids decode too.
        Inference only: runs under ``torch.inference_mode`` and returns an ordinary tensor.

        Args:
            indices: Token ids as above, int64 (any integer dtype is accepted).
            text: For a text-aware decoder only: prompts or embeddings, as in
                [`decode`][tokenkit.models.tokenizer.Tokenizer.decode].
            batch_size: Decode in chunks of this many; the images are those of one batch and
                the working memory is that of one chunk whatever ``B`` is (the output is
                allocated once and each chunk is clamped into it;
                see [`map_batches`][tokenkit.models.tokenizer.map_batches]). ``None``: one batch.

        Raises:
            ContractError: Wrong shape (e.g. ``(B, N)`` for a ``Q > 1`` quantizer) or dtype, ids outside
                the codebook, a bad ``batch_size``, a continuous bottleneck, or a stage-1 composition
                that cannot produce pixels.

        Examples:
            >>> import torch, tokenkit as tk
            >>> tok = tk.build("titok-tiny")
            >>> ids = torch.randint(0, tok.codebook_size, (5, tok.num_tokens))
            >>> tok.detokenize(ids, batch_size=2).shape
            torch.Size([5, 3, 32, 32])
        """
        if self.codebook_size is None:
            raise ContractError(f"quantizer {self.spec.quantizer.name!r} is continuous and has no token ids; "
                                "use decode(codes)")
        if self.pixel_decoder is None and self.decoder.output_kind != "images":
            raise ContractError("this composition decodes to proxy-code logits (stage 1); "
                                "add a pixel_decoder to get images")
        indices = check_indices(indices, num_tokens=self._length(indices, 2 + (self.num_codebooks > 1)),
                                codebook_size=self.codebook_size, num_codebooks=self.num_codebooks)
        with torch.inference_mode():
            guidance = self._text_guidance(text, indices.shape[0])
        if guidance is None:
            return map_batches(lambda chunk: self.decode(self.quantizer.lookup(chunk)), indices, batch_size,
                               inference=True, finish=lambda y, out: torch.clamp(y, 0.0, 1.0, out=out))
        rows = torch.arange(indices.shape[0], device=indices.device)
        return map_batches(lambda chunk: self.decode(self.quantizer.lookup(indices[chunk]), text=guidance[chunk]),
                           rows, batch_size, inference=True, finish=lambda y, out: torch.clamp(y, 0.0, 1.0, out=out))

    def compile(self, **options: Any) -> Tokenizer:
        """Compile the encoder, decoder and pixel decoder with ``torch.compile`` (opt-in), in place.

        ``tokenize`` / ``detokenize`` / ``encode`` / ``decode`` then run the compiled
        parts (the quantizer and the input checks stay eager). The first call of each
        part compiles it, which takes seconds to minutes; a new batch size compiles
        again (chunked calls see at most two sizes). Numerics follow the compiled
        kernels (differences are float rounding). Measured speed-ups and compile times:
        ``docs/guides/performance.md``.

        Args:
            **options: Passed to ``torch.compile`` (``mode``, ``backend``, ``dynamic``, ...).

        Returns:
            This tokenizer.

        Raises:
            ConfigError: The backend cannot run here: the default ``"inductor"`` needs a
                C++ compiler for CPU parts and Triton for CUDA parts; the message names
                what is missing. ``backend="eager"`` needs nothing (and gains nothing).

        Examples:
            >>> import tokenkit as tk
            >>> tok = tk.build("titok-tiny")
            >>> tok.compile(backend="eager") is tok   # compiles at the first call
            True
        """
        compile_modules([self.encoder, self.decoder, self.pixel_decoder], **options)
        return self

    def forward(self, images: torch.Tensor, text: object = None) -> TokenizerOutput:
        """Encode, quantize and decode (the training path: images not clamped); see
        [`TokenizerOutput`][tokenkit.contracts.TokenizerOutput]. ``text``: for a text-aware decoder, as in
        [`decode`][tokenkit.models.tokenizer.Tokenizer.decode].

        Examples:
            >>> import torch, tokenkit as tk
            >>> tok = tk.build("titok-tiny").eval()
            >>> images = torch.rand(1, 3, 32, 32)
            >>> out = tok(images)
            >>> torch.allclose(out.images.clamp(0, 1), tok.detokenize(out.indices), atol=1e-5)
            True
        """
        q = self.encode(images)
        return TokenizerOutput(self.decode(q.codes, text=text), q.indices, q.codes, q.loss, q.stats)
