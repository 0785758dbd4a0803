"""Reference MaskGen-VQ compositions (text-to-image generators) and their builder.

"Democratizing Text-to-Image Masked Generative Models with Compact Text-Aware One-Dimensional Tokens",
https://arxiv.org/abs/2501.07730. Official code: ``MaskGen_VQ``, ``modeling/maskgen.py`` of
bytedance/1d-tokenizer; sizes in ``configs/infer/MaskGen/maskgen_vq_{l,xl}.yaml``, sampling settings there
and in ``README_MaskGen.md`` (guidance 12, temperature 2, 16 steps, aesthetic score 6.5). The released
models generate the 128 tokens (codebook 8192) of TA-TiTok-BL128-VQ from the OpenCLIP ViT-L-14-336 text
tower (``openai`` weights)::

    gen = tk.build("maskgen-vq-xl", pretrained=True)
    ids = gen.generate(["a cozy cabin in a snowy forest"])     # (1, 128) ids
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenkit.errors import ConfigError, WeightsError
from tokenkit.generators.sampling import TextSamplingConfig
from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import GeneratorSpec, Part
from tokenkit.text_encoders.openclip import TINY, text_encoder_part


def maskgen(
    *,
    codebook_size: int = 8192,
    num_tokens: int = 128,
    num_classes: int = 1000,
    width: int = 1024,
    depth: int = 16,
    heads: int = 16,
    text_encoder: Part | bool = True,
    text_dim: int = 768,
    pooled_dim: int = 768,
    micro_condition: bool = True,
    micro_condition_dim: int = 256,
    text_dropout: float = 0.1,
    weight_tying: bool = True,
    schedule: str = "arccos",
    steps: int = 16,
    guidance: float = 12.0,
    guidance_decay: str = "cosine-ramp",
    guidance_pow: float = 1.0,
    temperature: float = 2.0,
    softmax_annealing: bool = True,
    aesthetic: float = 6.5,
    compat: bool = True,
) -> GeneratorSpec:
    """Expand MaskGen knobs into a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec] (a ``maskgen`` generator
    on an ``mmdit`` backbone).

    Args:
        codebook_size: Image-token vocabulary (the tokenizer's codebook size).
        num_tokens: Tokens per image (the tokenizer's ``num_tokens``).
        num_classes: Unused class rows of the token embedding (official 1000, kept for compatible weights).
        width: Hidden size.
        depth: MM-DiT blocks.
        heads: Attention heads.
        text_encoder: Text encoder part; ``True``: the official OpenCLIP ViT-L-14-336 (``OPENAI_VIT_L14_336``);
            ``False``: none (give text embeddings to the generator).
        text_dim: Width of the text encoder's per-token states.
        pooled_dim: Width of its pooled embedding.
        micro_condition: Condition on an aesthetic score too.
        micro_condition_dim: Width of the aesthetic-score encoding.
        text_dropout: Prompt dropout in training (for guidance).
        weight_tying: Logits from the token embedding (the official head).
        schedule: Mask schedule of training.
        steps: Default sampling steps.
        guidance: Default guidance scale.
        guidance_decay: ``cosine-ramp`` (MaskGen's ``cosine``), ``constant``, ``linear`` or ``power-cosine``.
        guidance_pow: Exponent of the cosine decays.
        temperature: Default Gumbel temperature (official ``randomize_temperature``).
        softmax_annealing: Default softmax temperature annealing.
        aesthetic: Default aesthetic score of the micro-condition.
        compat: Official sampler conventions.

    Raises:
        ConfigError: Invalid values, before any module is built.

    Examples:
        >>> import tokenkit as tk
        >>> spec = maskgen(text_encoder=False)
        >>> spec.generator.name, spec.generator.config["backbone"].name
        ('maskgen', 'mmdit')
        >>> tk.build(spec, device="meta").num_tokens
        128
    """
    text_encoder = text_encoder_part(text_encoder)
    try:
        sampling = TextSamplingConfig(steps=steps, guidance=guidance, guidance_decay=guidance_decay,
                                      guidance_pow=guidance_pow, temperature=temperature,
                                      softmax_annealing=softmax_annealing, aesthetic=aesthetic, compat=compat)
    except ValueError as err:
        raise ConfigError(f"invalid sampling settings: {err}") from None
    return GeneratorSpec(generator=Part(
        "maskgen", codebook_size=codebook_size, num_tokens=num_tokens, num_classes=num_classes, text_dim=text_dim,
        pooled_dim=pooled_dim, micro_condition=micro_condition, micro_condition_dim=micro_condition_dim,
        text_dropout=text_dropout, weight_tying=weight_tying, schedule=schedule,
        backbone=Part("mmdit", width=width, depth=depth, heads=heads), text_encoder=text_encoder, sampling=sampling))


def knobs_from_official(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Knobs of [`maskgen`][tokenkit.models.maskgen.maskgen] equivalent to an official ``MaskGen_VQ`` config
    tree (``configs/infer/MaskGen/maskgen_vq_*.yaml``, the ``config.json`` of the Hub repos), with the official
    defaults where keys are absent (``modeling/maskgen.py`` L94-139: ``text_embed_dim`` 768,
    ``sample_aesthetic_score`` 6.0, ``weight_tying`` on, ``mask_schedule_strategy`` arccos). The sampling
    settings are ``cfg``, ``num_iter`` and ``temperature`` (``randomize_temperature``) when given.

    Raises:
        WeightsError: No ``model.maskgen`` section, or a missing key.

    Examples:
        >>> import tokenkit as tk
        >>> tree = {"model": {"vq_model": {"codebook_size": 8192, "num_latent_tokens": 128},
        ...                   "maskgen": {"decoder_embed_dim": 1280, "decoder_depth": 20, "decoder_num_heads": 16,
        ...                               "micro_condition": True, "micro_condition_embed_dim": 256,
        ...                               "text_drop_prob": 0.1, "condition_num_classes": 1000, "cfg": 12.0,
        ...                               "num_iter": 16, "temperature": 2.0, "sample_aesthetic_score": 6.5}}}
        >>> maskgen(**knobs_from_official(tree)) == tk.spec("maskgen-vq-xl")
        True
    """
    model = tree.get("model", {})
    gen, vq = model.get("maskgen"), model.get("vq_model", {})
    if not isinstance(gen, Mapping):
        raise WeightsError("official config has no model.maskgen section")
    try:
        text_dim = int(vq.get("text_embed_dim", 768))
        knobs: dict[str, Any] = dict(
            codebook_size=int(vq["codebook_size"]), num_tokens=int(vq["num_latent_tokens"]),
            num_classes=int(gen["condition_num_classes"]), width=int(gen["decoder_embed_dim"]),
            depth=int(gen["decoder_depth"]), heads=int(gen["decoder_num_heads"]), text_dim=text_dim,
            pooled_dim=text_dim, micro_condition=bool(gen["micro_condition"]),
            micro_condition_dim=int(gen["micro_condition_embed_dim"]), text_dropout=float(gen["text_drop_prob"]),
            weight_tying=bool(gen.get("weight_tying", True)), schedule=gen.get("mask_schedule_strategy", "arccos"),
            aesthetic=float(gen.get("sample_aesthetic_score", 6.0)))
    except KeyError as err:
        raise WeightsError(f"official config: model has no {err.args[0]!r}") from None
    for knob, key in (("guidance", "cfg"), ("steps", "num_iter"), ("temperature", "randomize_temperature"),
                      ("temperature", "temperature")):
        if key in gen and knob not in knobs:
            knobs[knob] = int(gen[key]) if knob == "steps" else float(gen[key])
    return knobs


"""A tiny random OpenCLIP text tower (seeded), for ``maskgen-vq-tiny``."""

REFERENCE_MASKGEN: dict[str, dict[str, Any]] = {
    "maskgen-vq-l": dict(width=1024, depth=16, heads=16),
    "maskgen-vq-xl": dict(width=1280, depth=20, heads=16),
    "maskgen-vq-tiny": dict(width=32, depth=2, heads=2, codebook_size=256, num_tokens=8, num_classes=10,
                            text_encoder=TINY, text_dim=16, pooled_dim=16, micro_condition_dim=16,
                            steps=4, guidance=3.0),
}
"""Knobs of the named MaskGen generators: the official MaskGen-VQ-L / XL (``configs/infer/MaskGen/
maskgen_vq_{l,xl}.yaml``) and a tiny one for tests (pairs with ``titok-tiny``)."""

OFFICIAL_WEIGHTS: dict[str, WeightSource] = {
    f"maskgen-vq-{size}": WeightSource(f"turkeyju/generator_maskgen_vq_{size}", "model.safetensors",
                                       config="config.json")
    for size in ("l", "xl")
}
"""The released MaskGen-VQ generators: the Hub repos of ``README_MaskGen.md`` (bytedance/1d-tokenizer), which
``MaskGen_VQ.from_pretrained`` loads (sha256 not recorded; the CLIP text tower comes from its own source)."""

for _name, _knobs in REFERENCE_MASKGEN.items():
    register_model(_name, maskgen, weights=OFFICIAL_WEIGHTS.get(_name), **_knobs)
