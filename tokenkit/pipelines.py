"""End-to-end pipelines: class labels -> tokens -> images."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tokenkit.contracts import check_prompts
from tokenkit.errors import ContractError
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.precision import autocast, resolve_precision


def check_pair(generator: nn.Module, tokenizer: Tokenizer) -> None:
    """Raise unless ``generator`` models ``tokenizer``'s tokens (same codebook size and token count; for a
    generator of continuous tokens, same token count and width).

    The generator's token space has one id per position, so a tokenizer with
    several codebooks per token (``num_codebooks > 1``, ids ``(B, N, Q)``) is refused.
    """
    if getattr(generator, "codebook_size", None) is None:  # continuous tokens (MaskGen-KL)
        if tokenizer.codebook_size is not None:
            raise ContractError(f"the generator makes continuous tokens; tokenizer {tokenizer.spec.quantizer.name!r} "
                                "is discrete (use a tokenizer with a continuous bottleneck, e.g. tatitok-bl32-vae)")
        mine = (generator.num_tokens, generator.token_dim)
        if mine != (tokenizer.num_tokens, tokenizer.code_dim):
            raise ContractError(f"generator and tokenizer do not match: the generator makes {mine[0]} tokens of "
                                f"width {mine[1]}, the tokenizer decodes {tokenizer.num_tokens} of width "
                                f"{tokenizer.code_dim}")
        return
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


def _condition(generator: nn.Module, labels: Any, prompts: Any) -> tuple[Any, list[str] | None]:
    """What ``generator.generate`` is given: labels, or the prompts (checked) for a text generator."""
    text = getattr(generator, "conditioning", "class") == "text"
    name = type(generator).__name__
    if text:
        if labels is not None:
            raise ContractError(f"{name} is text-conditioned: give prompts=[...], not class labels")
        if prompts is None:
            raise ContractError(f"{name} is text-conditioned: give prompts=[...] (one per image)")
        prompts = check_prompts(prompts)
        return prompts, prompts
    if prompts is not None:
        raise ContractError(f"{name} is class-conditional: give labels, not prompts (text-to-image needs a text "
                            "generator such as maskgen-vq-xl)")
    if labels is None:
        raise ContractError(f"{name} is class-conditional: give labels (class ids)")
    return labels, None


@torch.no_grad()
def generate_images(generator: nn.Module, tokenizer: Tokenizer, labels: torch.Tensor | list[int] | None = None, *,
                    prompts: str | list[str] | None = None, seed: int | None = None,
                    rng: torch.Generator | None = None, progress: bool = False, precision: str = "auto",
                    **sampling: Any) -> torch.Tensor:
    """Generate images of classes ``labels`` or of text ``prompts``: sample tokens with ``generator``, decode
    with ``tokenizer``.

    Text-to-image (a generator with ``conditioning == "text"``, e.g. MaskGen): the prompts condition the
    generator (through its text encoder) and, for a text-aware tokenizer (TA-TiTok), its decoder too
    (the generator's embeddings when the tokenizer has the same text encoder or none, else its own). A
    generator of continuous tokens (MaskGen-KL) is decoded with ``tokenizer.decode``.

    Args:
        generator: A masked-token generator (e.g. ``tk.build("maskgit-titok-l32")``), an autoregressive
            one (e.g. ``tk.build("rar-b")`` with ``maskgit-vqgan``) or a text-to-image one
            (``tk.build("maskgen-vq-xl")`` with ``tatitok-bl128-vq``).
        tokenizer: The tokenizer whose tokens the generator models (e.g. ``titok-l32``).
        labels: ``(B,)`` class ids (class-conditional generators).
        prompts: One prompt per image (a string: one image), for text-conditioned generators.
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
        ContractError: The generator does not match the tokenizer, bad labels or prompts, labels for a text
            generator or prompts for a class-conditional one.
        ConfigError: An unknown precision, or one the device cannot run.

    Examples:
        >>> import torch, tokenkit as tk
        >>> images = tk.generate_images(tk.build("maskgit-tiny"), tk.build("titok-tiny"), [1, 2], seed=0)
        >>> images.shape
        torch.Size([2, 3, 32, 32])
    """
    check_pair(generator, tokenizer)
    condition, texts = _condition(generator, labels, prompts)
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
            if texts is not None:
                condition = generator.encode_text(texts)
            tokens = generator.generate(condition, generator=rng,
                                        callback=(lambda step, ids: bar.update(1)) if bar else None, **sampling)
    finally:
        if bar is not None:
            bar.close()
    tok_device = next(tokenizer.parameters()).device
    text = None
    if tokenizer.takes_text:
        if texts is None:
            raise ContractError("the tokenizer's decoder is text-aware: generate with a text generator and prompts")
        same_encoder = tokenizer.spec.text_encoder == getattr(generator.config, "text_encoder", None)
        # the generator's embeddings serve when the tokenizer has no text encoder or the same one (same weights)
        text = condition.tokens.to(tok_device) if tokenizer.text_encoder is None or same_encoder else texts
    with autocast(resolved if tok_device == device else precision, tok_device):
        if getattr(generator, "codebook_size", None) is None:  # continuous tokens
            with torch.inference_mode():
                images = tokenizer.decode(tokens.to(tok_device), text=text).clamp(0, 1)
        else:
            images = tokenizer.detokenize(tokens.to(tok_device), text=text)
    return images.float()
