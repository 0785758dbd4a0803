"""End-to-end pipelines: class labels -> tokens -> images."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tokenkit.errors import ContractError
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.precision import autocast, resolve_precision


def check_pair(generator: nn.Module, tokenizer: Tokenizer) -> None:
    """Raise unless ``generator`` models ``tokenizer``'s tokens (same codebook size and token count).

    The generator's token space has one id per position, so a tokenizer with
    several codebooks per token (``num_codebooks > 1``, ids ``(B, N, Q)``) is refused.
    """
    if tokenizer.codebook_size is None:
        raise ContractError("the tokenizer has a continuous bottleneck; a masked-token generator needs token ids")
    q = tokenizer.num_codebooks
    if q > 1:
        raise ContractError(
            f"the tokenizer has {q} codebooks per token (quantizer {tokenizer.spec.quantizer.name!r}, ids of shape "
            f"(B, {tokenizer.num_tokens}, {q})); a masked-token generator models one id per token position")
    if (generator.codebook_size, generator.num_tokens) != (tokenizer.codebook_size, tokenizer.num_tokens):
        raise ContractError(
            f"generator and tokenizer do not match: the generator models {generator.num_tokens} tokens over "
            f"{generator.codebook_size} codes, the tokenizer makes {tokenizer.num_tokens} tokens over "
            f"{tokenizer.codebook_size} codes")


@torch.no_grad()
def generate_images(generator: nn.Module, tokenizer: Tokenizer, labels: torch.Tensor | list[int], *,
                    seed: int | None = None, rng: torch.Generator | None = None, progress: bool = False,
                    precision: str = "auto", **sampling: Any) -> torch.Tensor:
    """Generate images of classes ``labels``: sample tokens with ``generator``, decode with ``tokenizer``.

    Args:
        generator: A masked-token generator (e.g. ``tk.build("maskgit-titok-l32")``) or an autoregressive
            one (e.g. ``tk.build("rar-b")`` with ``maskgit-vqgan``).
        tokenizer: The tokenizer whose tokens the generator models (e.g. ``titok-l32``).
        labels: ``(B,)`` class ids.
        seed: Seed of a fresh ``torch.Generator`` (ignored when ``rng`` is given).
        rng: Random generator for sampling.
        progress: Show a tqdm progress bar over the sampling steps.
        precision: ``auto`` (default: bf16 autocast where the hardware runs it natively, fp16 on CUDA
            without bf16, else fp32; see [`resolve_precision`][tokenkit.precision.resolve_precision]),
            ``fp32``, ``bf16`` or ``fp16``, resolved for the generator's device. Sampling and decoding
            run under it; the images are returned in float32 either way.
        **sampling: Sampling overrides (``steps``, ``guidance``, ``temperature``, ...).

    Returns:
        ``(B, C, H, W)`` float32 images in [0, 1].

    Raises:
        ContractError: The generator does not match the tokenizer, or bad labels.
        ConfigError: An unknown precision, or one the device cannot run.

    Examples:
        >>> import torch, tokenkit as tk
        >>> images = tk.generate_images(tk.build("maskgit-tiny"), tk.build("titok-tiny"), [1, 2], seed=0)
        >>> images.shape
        torch.Size([2, 3, 32, 32])
    """
    check_pair(generator, tokenizer)
    device = next(generator.parameters()).device
    resolved = resolve_precision(precision, device)
    if rng is None and seed is not None:
        rng = torch.Generator(device=device).manual_seed(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # a masked generator runs its sampling steps, an autoregressive one a step per token
        steps = sampling.get("steps", getattr(generator.config.sampling, "steps", generator.num_tokens))
        bar = tqdm(total=steps, desc="sampling", unit="step")
    try:
        with autocast(resolved, device):
            ids = generator.generate(labels, generator=rng,
                                     callback=(lambda step, ids: bar.update(1)) if bar else None, **sampling)
    finally:
        if bar is not None:
            bar.close()
    tok_device = next(tokenizer.parameters()).device
    with autocast(resolved if tok_device == device else precision, tok_device):
        images = tokenizer.detokenize(ids.to(tok_device))
    return images.float()
