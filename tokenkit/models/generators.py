"""Reference generator compositions and their builder.

Official: ``ImageBert`` / ``UViTBert``, ``modeling/maskgit.py`` L40-282.

Each TiTok generator is [`maskgit`][tokenkit.models.generators.maskgit] with
the official sizes and the official ImageNet sampling settings
(``model.generator`` in ``configs/infer/TiTok/titok_{l32,b64,s128}.yaml``)::

    gen = tk.build("maskgit-titok-l32")
    ids = gen.generate(labels)          # 8 steps, guidance 4.5 (linear), temperature 9.5
"""

from __future__ import annotations

from typing import Any

from tokenkit.errors import ConfigError
from tokenkit.generators.sampling import SamplingConfig
from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import GeneratorSpec, Part


def maskgit(
    *,
    codebook_size: int = 4096,
    num_tokens: int = 32,
    num_classes: int = 1000,
    backbone: str | Part = "bert",
    width: int = 768,
    depth: int = 24,
    heads: int = 16,
    mlp_dim: int = 3072,
    dropout: float = 0.1,
    label_dropout: float = 0.1,
    steps: int = 8,
    guidance: float = 3.0,
    guidance_decay: str = "constant",
    guidance_pow: float = 3.0,
    temperature: float = 4.5,
    softmax_annealing: bool = False,
    schedule: str = "arccos",
    compat: bool = True,
) -> GeneratorSpec:
    """Expand MaskGIT knobs into a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec].

    Args:
        codebook_size: Image-token vocabulary (the tokenizer's codebook size).
        num_tokens: Tokens per image (the tokenizer's ``num_tokens``).
        num_classes: Class labels.
        backbone: ``"bert"`` (ImageBert), ``"uvit"`` (UViTBert), ``"vit"`` or a backbone Part.
        width: Hidden size.
        depth: Layers (``uvit``: ``depth // 2`` on each side of the mid block).
        heads: Attention heads.
        mlp_dim: MLP hidden size.
        dropout: Dropout of the ``bert`` backbone (training only).
        label_dropout: Class dropout in training (for guidance).
        steps: Default sampling steps.
        guidance: Default guidance scale.
        guidance_decay: ``constant``, ``linear`` or ``power-cosine``.
        guidance_pow: Exponent of ``power-cosine``.
        temperature: Default Gumbel temperature.
        softmax_annealing: Default softmax temperature annealing.
        schedule: Mask schedule.
        compat: Official sampler conventions.

    Raises:
        ConfigError: Unknown backbone or invalid values, before any module is built.
    """
    if isinstance(backbone, Part):
        part = backbone
    elif backbone == "bert":
        part = Part("bert", width=width, depth=depth, heads=heads, mlp_dim=mlp_dim, dropout=dropout,
                    attn_dropout=dropout)
    elif backbone in ("uvit", "vit"):
        part = Part(backbone, width=width, depth=depth, heads=heads, mlp_ratio=mlp_dim / width)
    else:
        raise ConfigError(f"unknown backbone {backbone!r} for maskgit; use 'bert', 'uvit', 'vit' or a Part")
    try:
        sampling = SamplingConfig(steps=steps, guidance=guidance, guidance_decay=guidance_decay,
                                  guidance_pow=guidance_pow, temperature=temperature,
                                  softmax_annealing=softmax_annealing, schedule=schedule, compat=compat)
    except ValueError as err:
        raise ConfigError(f"invalid sampling settings: {err}") from None
    return GeneratorSpec(generator=Part(
        "maskgit", codebook_size=codebook_size, num_tokens=num_tokens, num_classes=num_classes,
        label_dropout=label_dropout, output_norm=part.name == "vit", backbone=part, sampling=sampling))


_IMAGEBERT: dict[str, Any] = dict(backbone="bert", width=768, depth=24, heads=16, mlp_dim=3072)

REFERENCE_GENERATORS: dict[str, dict[str, Any]] = {
    "maskgit-titok-l32": dict(_IMAGEBERT, num_tokens=32, steps=8, temperature=9.5, guidance=4.5,
                              guidance_decay="linear", softmax_annealing=True),
    "maskgit-titok-b64": dict(_IMAGEBERT, num_tokens=64, steps=8, temperature=11.0, guidance=3.0,
                              guidance_decay="linear", softmax_annealing=True),
    "maskgit-titok-s128": dict(backbone="uvit", width=1024, depth=20, heads=16, mlp_dim=4096, num_tokens=128,
                               steps=64, temperature=2.8, guidance=6.9, guidance_decay="power-cosine",
                               guidance_pow=3.0, softmax_annealing=True),
    "maskgit-tiny": dict(backbone="bert", width=64, depth=2, heads=4, mlp_dim=128, codebook_size=256,
                         num_tokens=8, num_classes=10, steps=4, guidance=2.0, temperature=2.0),
}
"""Knobs of the named generators: the official TiTok L-32/B-64/S-128 ones and a tiny one
(pairs with ``titok-tiny``)."""

OFFICIAL_WEIGHTS: dict[str, WeightSource] = {
    f"maskgit-titok-{size}": WeightSource(f"yucornetto/generator_titok_{size}_imagenet", "model.safetensors",
                                          config="config.json")
    for size in ("l32", "b64", "s128")
}
"""The released generators: the Hub repos of ``README_TiTok.md`` (bytedance/1d-tokenizer), which
``ImageBert.from_pretrained`` / ``UViTBert.from_pretrained`` load (sha256 not recorded)."""

for _name, _knobs in REFERENCE_GENERATORS.items():
    register_model(_name, maskgit, weights=OFFICIAL_WEIGHTS.get(_name), **_knobs)
