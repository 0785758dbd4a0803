"""Reference MaskGen-KL compositions (text-to-image, continuous tokens) and their builder.

"Democratizing Text-to-Image Masked Generative Models with Compact Text-Aware One-Dimensional Tokens"
(MaskGen), https://arxiv.org/abs/2501.07730. Official code: ``MaskGen_KL``, ``modeling/maskgen.py`` of
bytedance/1d-tokenizer; sizes and sampling settings in ``configs/infer/MaskGen/maskgen_kl_{l,xl}.yaml``;
releases in ``README_MaskGen.md``. The released generators make the 32 x 16 continuous tokens of
TA-TiTok-BL32-VAE (``turkeyju/tokenizer_tatitok_bl32_vae``) from the prompts' OpenCLIP ViT-L-14-336
(``openai``) embeddings::

    gen = tk.build("maskgen-kl-l", pretrained=True)
    codes = gen.generate(["a cozy cabin in a snowy forest"])   # (1, 32, 16), for the tokenizer's decoder
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenkit.errors import ConfigError
from tokenkit.generators.maskgen_kl import MaskGenKLSamplingConfig
from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import GeneratorSpec, Part
from tokenkit.text_encoders.openclip import TINY, text_encoder_part


def maskgen_kl(
    *,
    num_tokens: int = 32,
    token_dim: int = 16,
    scale_factor: float = 0.7525,
    width: int = 1024,
    depth: int = 16,
    heads: int = 16,
    head_width: int = 1024,
    head_depth: int = 8,
    text_encoder: Part | bool = True,
    text_dim: int = 768,
    pooled_dim: int = 768,
    micro_condition: bool = True,
    micro_condition_dim: int = 256,
    text_dropout: float = 0.1,
    diffusion_batch_mul: int = 4,
    diffusion_timesteps: int = 1000,
    steps: int = 32,
    guidance: float = 3.0,
    guidance_schedule: str = "linear",
    temperature: float = 1.0,
    aesthetic: float = 6.5,
    diffusion_steps: int = 100,
) -> GeneratorSpec:
    """Expand MaskGen-KL knobs into a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec] (a ``maskgen-kl``
    generator on an ``mmdit`` backbone).

    Args:
        num_tokens: Tokens per image (the tokenizer's).
        token_dim: Channels per token (the tokenizer's code width).
        scale_factor: Codes are multiplied by it inside the model.
        width: MM-DiT width (official ``decoder_embed_dim``).
        depth: MM-DiT blocks (``decoder_depth``).
        heads: Attention heads (``decoder_num_heads``).
        head_width: Diffusion MLP width (``diffloss_w``).
        head_depth: Diffusion MLP blocks (``diffloss_d``).
        text_encoder: Text encoder Part; ``True``: OpenCLIP ViT-L-14-336 (``openai``), as the releases;
            ``False``: none (the model then takes embeddings only).
        text_dim: Width of the text encoder's hidden states.
        pooled_dim: Width of its pooled embedding.
        micro_condition: Aesthetic-score micro-condition.
        micro_condition_dim: Width of its encoding.
        text_dropout: Prompt dropout in training (for guidance).
        diffusion_batch_mul: Diffusion-loss draws per token in training.
        diffusion_timesteps: Steps of the training diffusion.
        steps: Default masked decoding steps.
        guidance: Default guidance scale.
        guidance_schedule: ``"linear"`` (official) or ``"constant"``.
        temperature: Default diffusion noise temperature.
        aesthetic: Default aesthetic score.
        diffusion_steps: Default diffusion steps per token when sampling.

    Raises:
        ConfigError: Invalid values, before any module is built.

    Examples:
        >>> import tokenkit as tk
        >>> spec = maskgen_kl(width=1280, depth=20, head_width=1280)
        >>> spec.generator.name, spec.generator.config["backbone"].name
        ('maskgen-kl', 'mmdit')
        >>> tk.build(spec, device="meta").head.config.width
        1280
    """
    text_encoder = text_encoder_part(text_encoder)
    try:
        sampling = MaskGenKLSamplingConfig(steps=steps, guidance=guidance, guidance_schedule=guidance_schedule,
                                           temperature=temperature, aesthetic=aesthetic,
                                           diffusion_steps=diffusion_steps)
    except ValueError as err:
        raise ConfigError(f"invalid sampling settings: {err}") from None
    return GeneratorSpec(generator=Part(
        "maskgen-kl", num_tokens=num_tokens, token_dim=token_dim, scale_factor=scale_factor, text_dim=text_dim,
        pooled_dim=pooled_dim, micro_condition=micro_condition, micro_condition_dim=micro_condition_dim,
        text_dropout=text_dropout, head_width=head_width, head_depth=head_depth,
        diffusion_batch_mul=diffusion_batch_mul, diffusion_timesteps=diffusion_timesteps,
        backbone=Part("mmdit", width=width, depth=depth, heads=heads), text_encoder=text_encoder,
        sampling=sampling))


def maskgen_kl_knobs_from_official(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Knobs of [`maskgen_kl`][tokenkit.models.maskgen_kl.maskgen_kl] equivalent to an official MaskGen-KL
    config tree (``config.json`` of the releases, ``configs/infer/MaskGen/maskgen_kl_*.yaml``), with the
    official defaults where keys are absent.

    Raises:
        KeyError: A required key is missing (``model.vq_model`` / ``model.maskgen`` / ``losses`` entries).

    Examples:
        >>> tree = {"model": {"vq_model": {"token_size": 16, "num_latent_tokens": 32, "scale_factor": 0.7525},
        ...                   "maskgen": {"decoder_embed_dim": 1280, "decoder_depth": 20, "decoder_num_heads": 16,
        ...                               "micro_condition": True, "micro_condition_embed_dim": 256,
        ...                               "text_drop_prob": 0.1}},
        ...         "losses": {"diffloss_d": 8, "diffloss_w": 1280}}
        >>> knobs = maskgen_kl_knobs_from_official(tree)
        >>> knobs["width"], knobs["head_width"], knobs["steps"], knobs["diffusion_steps"]
        (1280, 1280, 32, 100)
    """
    vq, gen, losses = tree["model"]["vq_model"], tree["model"]["maskgen"], tree.get("losses", {})
    return dict(
        num_tokens=int(vq["num_latent_tokens"]), token_dim=int(vq["token_size"]),
        scale_factor=float(vq["scale_factor"]), text_dim=int(vq.get("text_embed_dim", 768)),
        pooled_dim=int(vq.get("text_embed_dim", 768)),
        width=int(gen["decoder_embed_dim"]), depth=int(gen["decoder_depth"]), heads=int(gen["decoder_num_heads"]),
        micro_condition=bool(gen["micro_condition"]), micro_condition_dim=int(gen["micro_condition_embed_dim"]),
        text_dropout=float(gen["text_drop_prob"]), diffusion_batch_mul=int(gen.get("diffusion_batch_mul", 4)),
        head_width=int(losses["diffloss_w"]), head_depth=int(losses["diffloss_d"]),
        steps=int(gen.get("num_iter", 32)), guidance=float(gen.get("cfg", 3.0)),
        guidance_schedule=str(gen.get("cfg_schedule", "linear")), temperature=float(gen.get("temperature", 1.0)),
        aesthetic=float(gen.get("sample_aesthetic_score", 6.5)),
        diffusion_steps=int(losses.get("num_sampling_steps", 100)),
    )



REFERENCE_MASKGEN_KL: dict[str, dict[str, Any]] = {
    "maskgen-kl-l": dict(width=1024, depth=16, heads=16, head_width=1024, head_depth=8),
    "maskgen-kl-xl": dict(width=1280, depth=20, heads=16, head_width=1280, head_depth=8),
    "maskgen-kl-tiny": dict(width=32, depth=2, heads=2, head_width=32, head_depth=2, num_tokens=8, token_dim=4,
                            text_encoder=TINY, text_dim=16, pooled_dim=16, micro_condition_dim=16,
                            steps=4, guidance=2.0, diffusion_steps=4, diffusion_batch_mul=2),
}
"""Knobs of the named MaskGen-KL generators: the official L and XL (``configs/infer/MaskGen/
maskgen_kl_{l,xl}.yaml``) and a tiny one for tests (random tiny text encoder, 8 tokens x 4 channels)."""

OFFICIAL_WEIGHTS: dict[str, WeightSource] = {
    f"maskgen-kl-{size}": WeightSource(f"turkeyju/generator_maskgen_kl_{size}", "model.safetensors",
                                       config="config.json")
    for size in ("l", "xl")
}
"""The released generators: the Hub repos of ``README_MaskGen.md`` (bytedance/1d-tokenizer), which
``MaskGen_KL.from_pretrained`` loads (sha256 not recorded; the CLIP text tower is not in them)."""

for _name, _knobs in REFERENCE_MASKGEN_KL.items():
    register_model(_name, maskgen_kl, weights=OFFICIAL_WEIGHTS.get(_name), **_knobs)
