"""Output types and the tensor checks used at public boundaries.

Tensor names are fixed across tokenkit: ``images`` ``(B, C, H, W)`` float in
[0, 1], ``latents`` ``(B, N, D)``, ``codes`` ``(B, N, D')``, ``indices``
``(B, N)`` int64 (``(B, N, Q)`` for a quantizer with ``num_codebooks = Q > 1``).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator
from typing import NamedTuple

import torch

from tokenkit.errors import ContractError
from tokenkit.validation import format_size, image_shape


class QuantizerOutput(NamedTuple):
    """What every quantizer returns.

    Attributes:
        codes: ``(B, N, D')`` quantized (or sampled) latents, differentiable
            with respect to the latents.
        indices: ``(B, N)`` int64 codebook ids (``(B, N, Q)`` for a quantizer with
            ``num_codebooks = Q > 1``, level on the last axis), or ``None`` for a continuous bottleneck.
        loss: Scalar bottleneck loss (VQ commitment + codebook, or KL).
        stats: Detached scalar diagnostics (e.g. ``usage``, ``perplexity``).

    Examples:
        >>> import torch, tokenkit as tk
        >>> vq = tk.build_part("quantizer", tk.Part("vq", codebook_size=16, dim=4))
        >>> out = vq(torch.randn(2, 5, 4))
        >>> out.codes.shape, out.indices.shape, out.loss.ndim
        (torch.Size([2, 5, 4]), torch.Size([2, 5]), 0)
    """

    codes: torch.Tensor
    indices: torch.Tensor | None
    loss: torch.Tensor
    stats: dict[str, torch.Tensor]


class TokenizerOutput(NamedTuple):
    """What ``Tokenizer.forward`` returns.

    Attributes:
        images: ``(B, C, H, W)`` reconstruction (not clamped), or proxy-code
            logits ``(B, L, K)`` for a stage-1 composition without pixel decoder.
        indices: ``(B, N)`` int64 token ids (``(B, N, Q)`` with ``Q > 1`` codebooks per token),
            or ``None`` for a continuous bottleneck.
        codes: ``(B, N, D')`` codes fed to the decoder.
        loss: Scalar bottleneck loss.
        stats: Detached scalar diagnostics from the quantizer.

    Examples:
        >>> import torch, tokenkit as tk
        >>> tok = tk.build("titok-tiny")
        >>> out = tok(torch.rand(2, 3, 32, 32))
        >>> out.images.shape, out.indices.shape, sorted(out.stats)[-2:]
        (torch.Size([2, 3, 32, 32]), torch.Size([2, 8]), ['perplexity', 'usage'])
    """

    images: torch.Tensor
    indices: torch.Tensor | None
    codes: torch.Tensor
    loss: torch.Tensor
    stats: dict[str, torch.Tensor]


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in t.shape) + ")"


def _resize_hint(size: int | tuple[int, int]) -> str:
    size = format_size(size)
    return (f"resize and centre-crop with tk.load_images(paths, size={size}) (files) or "
            f"tokenkit.datasets.transforms.eval_transform({size}) (PIL images)")


_VALUE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("tokenkit_value_checks", default=True)


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Turn the checks of tensor *values* (finite, in range) on or off inside a ``with`` block.

    They read every element (one pass over the data); a loop that already knows its inputs
    are clean can skip them. Shapes and dtypes are always checked.

    Examples:
        >>> import torch
        >>> with value_checks(False):
        ...     check_images(torch.full((1, 3, 2, 2), float("nan")), channels=3).shape
        torch.Size([1, 3, 2, 2])
    """
    token = _VALUE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def _values_checked(tensor: torch.Tensor) -> bool:
    return _VALUE_CHECKS.get() and tensor.numel() > 0 and tensor.device.type != "meta"


def check_finite(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """Raise a ContractError if ``tensor`` holds NaN or Inf (naming how many and the first position).

    Examples:
        >>> import torch
        >>> check_finite(torch.tensor([0.0, float("inf")]), "codes")
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: codes contain 1 non-finite value(s) (NaN or Inf), the first at index (1,)
    """
    if _values_checked(tensor):
        bad = ~torch.isfinite(tensor.detach())
        if bad.any():
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ContractError(f"{name} contain {int(bad.sum())} non-finite value(s) (NaN or Inf), "
                                f"the first at index {first}")
    return tensor


def check_tensor(value: object, name: str) -> torch.Tensor:
    """Raise unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise ContractError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def _range_hint(lo: float, hi: float) -> str:
    """What the range suggests the images are, and the map to [0, 1]."""
    if -1.0 <= lo < 0.0 and hi <= 1.0:
        return " (images in [-1, 1], as diffusers and many GAN codes use: map them with (x + 1) / 2)"
    if lo >= 0.0 and hi <= 255.0:
        return " (8-bit values: divide by 255)"
    return " (scale them to [0, 1] first)"


def check_images(
    images: object, *, channels: int, image_size: int | tuple[int, int] | None = None,
    patch_size: int | None = None, check_range: bool = True,
) -> torch.Tensor:
    """Validate ``images`` ``(B, C, H, W)`` float in [0, 1] (and finite; see
    [`value_checks`][tokenkit.contracts.value_checks] to skip the value checks).

    Args:
        images: The batch.
        channels: ``C`` expected.
        image_size: The size expected: a side (square) or ``(H, W)``; ``None``: any size (divisible
            by ``patch_size`` when that is given).
        patch_size: Both sides must be divisible by it (only checked without ``image_size``, which
            the model's configuration already made divisible).
        check_range: Check values lie in [0, 1] (else only that they are finite).

    Raises:
        ContractError: Naming what was expected and what came (and, for a wrong size, how to resize).

    Examples:
        >>> import torch
        >>> check_images(torch.rand(1, 3, 32, 49), channels=3, image_size=32)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: images must be 32x32 for this tokenizer ((H, W) = (32, 32)), got 32x49 ...
    """
    images = check_tensor(images, "images")
    if images.ndim != 4:
        raise ContractError(f"images must have shape (B, {channels}, H, W), got {_shape(images)}")
    if images.shape[1] != channels:
        raise ContractError(f"images must have {channels} channels (B, {channels}, H, W), got {_shape(images)}")
    if not images.is_floating_point():
        raise ContractError(f"images must be a float tensor in [0, 1], got dtype {images.dtype}")
    height, width = images.shape[-2:]
    if image_size is not None:
        expected = image_shape(image_size)
        if (height, width) != expected:
            raise ContractError(f"images must be {expected[0]}x{expected[1]} for this tokenizer ((H, W) = {expected}), "
                                f"got {height}x{width} ((H, W) = {(height, width)}); {_resize_hint(image_size)}")
    elif patch_size is not None and (height % patch_size or width % patch_size):
        raise ContractError(f"image height and width must be divisible by the patch size {patch_size}, got "
                            f"{height}x{width} (H x W)")
    if not check_range:
        return check_finite(images, "images")
    if _values_checked(images):
        lo, hi = torch.aminmax(images.detach())  # one pass: NaN and Inf show in the extremes too
        if not (math.isfinite(lo.item()) and math.isfinite(hi.item())):
            check_finite(images, "images")  # the slow path, for the message
        if lo.item() < 0.0 or hi.item() > 1.0:
            raise ContractError(f"images must have values in [0, 1], got range [{lo.item():.3g}, {hi.item():.3g}]"
                                f"{_range_hint(lo.item(), hi.item())}")
    return images


def check_indices(indices: object, *, num_tokens: int, codebook_size: int, allow_official: bool = True,
                  num_codebooks: int = 1) -> torch.Tensor:
    """Validate token ids and return them as int64.

    With one codebook (``num_codebooks=1``) ids are ``(B, N)`` (or the official
    ``(B, 1, N)``, returned as ``(B, N)``). A quantizer with ``Q > 1`` codebooks
    per token (e.g. residual VQ) has one id per token and level: ``(B, N, Q)``,
    level on the last axis.

    Raises:
        ContractError: Wrong rank, length, number of levels, dtype or ids outside ``[0, codebook_size)``.
    """
    indices = check_tensor(indices, "indices")
    if num_codebooks == 1:
        if allow_official and indices.ndim == 3 and indices.shape[1] == 1:
            indices = indices[:, 0]
        if indices.ndim != 2 or indices.shape[1] != num_tokens:
            raise ContractError(
                f"indices must have shape (B, {num_tokens}) or (B, 1, {num_tokens}), got {_shape(indices)}")
    elif indices.ndim != 3 or tuple(indices.shape[1:]) != (num_tokens, num_codebooks):
        raise ContractError(
            f"indices must have shape (B, {num_tokens}, {num_codebooks}): one id per token and codebook level "
            f"(this quantizer has {num_codebooks} codebooks per token), got {_shape(indices)}")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise ContractError(f"indices must be an integer tensor, got dtype {indices.dtype}")
    if indices.numel() and indices.device.type != "meta":
        lo, hi = torch.aminmax(indices)
        if lo.item() < 0 or hi.item() >= codebook_size:
            raise ContractError(
                f"indices must lie in [0, {codebook_size}) (the codebook size), got range [{lo.item()}, {hi.item()}]"
            )
    return indices.long()


def check_tokens(tokens: object, name: str, *, dim: int, num_tokens: int | None = None) -> torch.Tensor:
    """Validate a float token tensor ``(B, N, dim)``."""
    tokens = check_tensor(tokens, name)
    n = "N" if num_tokens is None else str(num_tokens)
    if tokens.ndim != 3 or tokens.shape[-1] != dim or (num_tokens is not None and tokens.shape[1] != num_tokens):
        raise ContractError(f"{name} must have shape (B, {n}, {dim}), got {_shape(tokens)}")
    if not tokens.is_floating_point():
        raise ContractError(f"{name} must be a float tensor, got dtype {tokens.dtype}")
    return check_finite(tokens, name)


def check_labels(labels: object, device: torch.device | str | None = None) -> torch.Tensor:
    """Class ids as a 1-D int64 tensor: a non-empty list / tuple of ints or a 1-D integer tensor.

    Raises:
        ContractError: Empty, not integers (floats, strings, bools), or not 1-D; the message names what came.

    Examples:
        >>> check_labels([1, 7])
        tensor([1, 7])
        >>> check_labels([])
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: labels is empty: give at least one class id
    """
    if isinstance(labels, torch.Tensor):
        tensor = labels
    elif hasattr(labels, "__array__") and hasattr(labels, "dtype"):  # a numpy array
        tensor = torch.as_tensor(labels)
    elif isinstance(labels, (list, tuple)):
        bad = [v for v in labels if isinstance(v, bool) or not isinstance(v, int) and not (
            isinstance(v, torch.Tensor) and v.ndim == 0 and not v.is_floating_point())]
        if bad:
            raise ContractError(f"labels must be integer class ids, got {bad[0]!r} ({type(bad[0]).__name__})")
        tensor = torch.tensor([int(v) for v in labels], dtype=torch.int64)
    else:
        raise ContractError(f"labels must be a list of class ids or a 1-D integer tensor, got {type(labels).__name__}")
    if tensor.ndim != 1 or tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ContractError(f"labels must be a 1-D integer tensor of class ids, got {tensor.dtype} "
                            f"{tuple(tensor.shape)}")
    if tensor.numel() == 0:
        raise ContractError("labels is empty: give at least one class id")
    return tensor.to(device=device, dtype=torch.int64)


class TextEmbeddings(NamedTuple):
    """What a text encoder ([`TextEncoder`][tokenkit.kinds.TextEncoder]) gives for ``B`` prompts.

    Attributes:
        tokens: ``(B, L, W)`` the text transformer's output sequence after its final LayerNorm (TA-TiTok's
            decoder guidance).
        hidden: ``(B, L, W)`` the output of the penultimate block, before the last block and the final
            LayerNorm (MaskGen's per-token condition).
        pooled: ``(B, E)`` the pooled, projected embedding (at the end-of-text token; MaskGen's pooled condition).
    """

    tokens: torch.Tensor
    hidden: torch.Tensor
    pooled: torch.Tensor

    def repeat(self, times: int) -> TextEmbeddings:
        """Each field repeated ``times`` along the batch (one prompt for ``times`` images)."""
        return TextEmbeddings(*(t.expand(times, *t.shape[1:]) if t.shape[0] == 1 else t.repeat_interleave(times, 0)
                                for t in self))

    def select(self, index: slice | torch.Tensor) -> TextEmbeddings:
        """The rows ``index`` of every field."""
        return TextEmbeddings(*(t[index] for t in self))


def check_prompts(prompts: object, batch: int | None = None, *, what: str = "prompts") -> list[str]:
    """Prompts as a list of strings: one string or a list / tuple of strings, ``batch`` of them when given.

    Raises:
        ContractError: Another type, a non-string item, no prompt, or the wrong number.

    Examples:
        >>> check_prompts("a cat"), check_prompts(["a", "b"], 2)
        (['a cat'], ['a', 'b'])
        >>> check_prompts(["a", 3])
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: prompts must be strings; item 1 is int (3)
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise ContractError(f"{what} must be a string or a list of strings, got {type(prompts).__name__}")
    for i, item in enumerate(prompts):
        if not isinstance(item, str):
            shown = repr(item) if len(repr(item)) <= 40 else repr(item)[:37] + "..."
            raise ContractError(f"{what} must be strings; item {i} is {type(item).__name__} ({shown})")
    if not prompts:
        raise ContractError(f"{what} is empty: give at least one prompt")
    if batch is not None and len(prompts) != batch:
        raise ContractError(f"{len(prompts)} {what} for {batch} images: give one per image (or a single string)")
    return list(prompts)


class LossInputs(NamedTuple):
    """Everything a loss term may need from one training step.

    Attributes:
        images: ``(B, C, H, W)`` real images in [0, 1].
        reconstructions: ``(B, C, H, W)`` reconstructed images, or proxy-code logits
            ``(B, L, K)`` for the stage-1 cross-entropy.
        quantizer_loss: Scalar bottleneck loss (VQ commitment + codebook, or the KL).
        targets: Optional ``(B, L)`` int64 teacher codes (stage 1).
        step: Global optimisation step (schedules the adversarial term).
    """

    images: torch.Tensor
    reconstructions: torch.Tensor
    quantizer_loss: torch.Tensor
    targets: torch.Tensor | None = None
    step: int = 0


class LossOutput(NamedTuple):
    """A total loss with its (weighted, detached) parts.

    Attributes:
        loss: Scalar total to back-propagate.
        terms: ``{name: detached scalar}``, each term already multiplied by its weight.
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]


def check_generator_inputs(indices: torch.Tensor, labels: torch.Tensor, *, num_tokens: int, mask_id: int,
                           num_classes: int) -> None:
    """The inputs of a generator's forward pass: ``indices`` ``(B, N)`` integer ids in ``[0, mask_id]`` and
    ``labels`` ``(B,)`` integer class ids in ``[0, num_classes)``.

    Raises:
        ContractError: Wrong shape, dtype or range; the message names what came.

    Examples:
        >>> check_generator_inputs(torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 9]), num_tokens=4,
        ...                        mask_id=16, num_classes=10)
        >>> check_generator_inputs(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]), num_tokens=4,
        ...                        mask_id=16, num_classes=10)
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: indices must be integer ids of shape (B, 4), got torch.int64 (2, 3)
    """
    check_tensor(indices, "indices")
    check_tensor(labels, "labels")
    if indices.ndim != 2 or indices.shape[1] != num_tokens or indices.is_floating_point():
        raise ContractError(f"indices must be integer ids of shape (B, {num_tokens}), "
                            f"got {indices.dtype} {tuple(indices.shape)}")
    if labels.shape != indices.shape[:1] or labels.is_floating_point():
        raise ContractError(f"labels must be integer class ids of shape ({indices.shape[0]},), "
                            f"got {labels.dtype} {tuple(labels.shape)}")
    if indices.numel() and not indices.is_meta:
        lo, hi = torch.aminmax(indices)
        if lo < 0 or hi > mask_id:
            raise ContractError(f"indices must lie in [0, {mask_id}] (ids or the mask id {mask_id}), "
                                f"got range [{int(lo)}, {int(hi)}]")
        lo, hi = torch.aminmax(labels)
        if lo < 0 or hi >= num_classes:
            raise ContractError(f"labels must lie in [0, {num_classes}), got range [{int(lo)}, {int(hi)}]")
