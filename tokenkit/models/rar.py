"""Reference RAR compositions (autoregressive generators) and their builder.

"Randomized Autoregressive Visual Generation", https://arxiv.org/abs/2411.00776. Official code:
``RAR``, ``modeling/rar.py``; sizes and ImageNet sampling settings in ``README_RAR.md`` and
``configs/training/generator/rar.yaml`` of bytedance/1d-tokenizer. The released RAR models generate
the 256 tokens (codebook 1024) of the ``maskgit-vqgan`` tokenizer; any other discrete tokenizer is a
change of knobs (``num_tokens``, ``codebook_size``)::

    gen = tk.build("rar-b")                                   # 261M parameters, for maskgit-vqgan
    ids = gen.generate(labels)                                # 256 steps with a KV cache
    titok_ar = tk.build("rar-b", num_tokens=32, codebook_size=4096)   # RAR over TiTok-L-32 tokens
"""

from __future__ import annotations

from typing import Any

from tokenkit.errors import ConfigError
from tokenkit.generators.ar_sampling import ARSamplingConfig
from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import GeneratorSpec, Part


def rar(
    *,
    codebook_size: int = 1024,
    num_tokens: int = 256,
    num_classes: int = 1000,
    width: int = 768,
    depth: int = 24,
    heads: int = 16,
    mlp_dim: int = 3072,
    dropout: float = 0.1,
    label_dropout: float = 0.1,
    position_rows: int = 1024,
    step_rows: int = 100,
    guidance: float = 16.0,
    guidance_decay: str = "power-cosine",
    guidance_pow: float = 2.75,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    kv_cache: bool = True,
) -> GeneratorSpec:
    """Expand RAR knobs into a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec] (an ``ar`` generator on a
    causal ``dit`` backbone).

    Args:
        codebook_size: Image-token vocabulary (the tokenizer's codebook size).
        num_tokens: Tokens per image (the tokenizer's ``num_tokens``).
        num_classes: Class labels.
        width: Hidden size.
        depth: Blocks.
        heads: Attention heads.
        mlp_dim: MLP hidden size.
        dropout: Dropout of the attention weights, projections and MLP (training only; official 0.1).
        label_dropout: Class dropout in training (for guidance).
        position_rows: Rows of the position tables beyond ``num_tokens`` (official 1024).
        step_rows: Rows of the per-position condition table beyond ``num_tokens`` (official 100).
        guidance: Default guidance scale.
        guidance_decay: ``constant``, ``linear`` or ``power-cosine`` (official).
        guidance_pow: Exponent of ``power-cosine``.
        temperature: Default softmax temperature.
        top_k: Default top-k filter (0: none).
        top_p: Default nucleus filter (1: none).
        kv_cache: Sample with a KV cache.

    Raises:
        ConfigError: Invalid sampling settings, before any module is built.

    Examples:
        >>> import tokenkit as tk
        >>> spec = rar(num_tokens=32, codebook_size=4096)  # RAR-B over TiTok-L-32 tokens
        >>> spec.generator.name, spec.generator.config["backbone"].name
        ('ar', 'dit')
        >>> tk.build(spec, device="meta").num_tokens
        32
    """
    try:
        sampling = ARSamplingConfig(guidance=guidance, guidance_decay=guidance_decay, guidance_pow=guidance_pow,
                                    temperature=temperature, top_k=top_k, top_p=top_p, kv_cache=kv_cache)
    except ValueError as err:
        raise ConfigError(f"invalid sampling settings: {err}") from None
    backbone = Part("dit", width=width, depth=depth, heads=heads, mlp_dim=mlp_dim, causal=True, qk_norm=True,
                    dropout=dropout, attn_dropout=dropout)
    return GeneratorSpec(generator=Part(
        "ar", codebook_size=codebook_size, num_tokens=num_tokens, num_classes=num_classes,
        label_dropout=label_dropout, position_rows=position_rows, step_rows=step_rows, backbone=backbone,
        sampling=sampling))


REFERENCE_RAR: dict[str, dict[str, Any]] = {
    "rar-b": dict(width=768, depth=24, mlp_dim=3072, temperature=1.0, guidance=16.0, guidance_pow=2.75),
    "rar-l": dict(width=1024, depth=24, mlp_dim=4096, temperature=1.02, guidance=15.5, guidance_pow=2.5),
    "rar-xl": dict(width=1280, depth=32, mlp_dim=5120, temperature=1.02, guidance=6.9, guidance_pow=1.5),
    "rar-xxl": dict(width=1408, depth=40, mlp_dim=6144, temperature=1.02, guidance=8.0, guidance_pow=1.2),
    "rar-tiny": dict(width=32, depth=2, heads=2, mlp_dim=64, codebook_size=256, num_tokens=8, num_classes=10,
                     position_rows=2, step_rows=2, guidance=2.0, guidance_pow=1.0),
}
"""Knobs of the named RAR generators: the official RAR-B / L / XL / XXL with their ImageNet sampling
settings (``README_RAR.md``), and a tiny one for tests (pairs with ``titok-tiny``)."""

OFFICIAL_WEIGHTS: dict[str, WeightSource] = {
    f"rar-{size}": WeightSource("yucornetto/RAR", f"rar_{size}.bin") for size in ("b", "l", "xl", "xxl")
}
"""The released RAR generators: ``yucornetto/RAR`` of ``README_RAR.md`` (bytedance/1d-tokenizer; sha256 not
recorded)."""

for _name, _knobs in REFERENCE_RAR.items():
    register_model(_name, rar, weights=OFFICIAL_WEIGHTS.get(_name), **_knobs)
