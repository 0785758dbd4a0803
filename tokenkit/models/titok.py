"""TiTok reference compositions and their builder.

Official: ``TiTok``, ``modeling/titok.py`` L76-207, configured by ``configs/infer/TiTok/*.yaml``.

Every released TiTok tokenizer is [`titok`][tokenkit.models.titok.titok] with
fixed knobs; an ablation is a change of knobs::

    tk.build("titok-b64", num_tokens=128, image_size=512, encoder_size="large")
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tokenkit.errors import ConfigError
from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import Part, TokenizerSpec, resolve_part
from tokenkit.text_encoders.openclip import text_encoder_part
from tokenkit.validation import check_patch_divisible, check_positive_ints

SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (64, 2, 4),
    "small": (512, 8, 8),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}
"""Transformer sizes by name: ``(width, depth, heads)``; small/base/large as the official code."""


VQGAN_UPSAMPLING = 16
"""Upsampling factor of the MaskGIT-VQGAN pixel decoder of the two-stage models (its patch size)."""


def _backbone(size: str | tuple[int, int, int], backbone: str, what: str) -> Part:
    if isinstance(size, str):
        if size not in SIZES:
            raise ConfigError(f"unknown {what} {size!r}; choose one of {', '.join(SIZES)} or a (width, depth, heads) tuple")
        size = SIZES[size]
    if not (isinstance(size, (tuple, list)) and len(size) == 3):
        raise ConfigError(f"{what} must be a size name or a (width, depth, heads) tuple, got {size!r}")
    width, depth, heads = size
    return Part(backbone, width=width, depth=depth, heads=heads)


def titok(
    *,
    image_size: int | tuple[int, int] = 256,
    patch_size: int = 16,
    num_tokens: int = 32,
    encoder_size: str | tuple[int, int, int] = "base",
    decoder_size: str | tuple[int, int, int] = "base",
    quantizer: str | Part = "vq",
    codebook_size: int | None = None,
    token_dim: int | None = None,
    l2_norm: bool = False,
    commitment_cost: float = 0.25,
    legacy: bool = False,
    pixel_decoder: bool | Part | None = None,
    backbone: str = "vit",
    text_encoder: Part | bool | None = None,
) -> TokenizerSpec:
    """Expand TiTok knobs into a [`TokenizerSpec`][tokenkit.specs.TokenizerSpec].

    Args:
        image_size: Input and output resolution: a side (square) or ``(H, W)`` (a list from JSON/YAML too).
        patch_size: ViT patch side (and the upsampling factor of the pixel decoder).
        num_tokens: Latent tokens per image ``N``.
        encoder_size: ``tiny``/``small``/``base``/``large`` or ``(width, depth, heads)``.
        decoder_size: Same for the decoder.
        quantizer: ``"vq"``, ``"gaussian"`` or any quantizer [`Part`][tokenkit.specs.Part].
        codebook_size: ``K`` for ``vq`` (default 4096); not allowed for ``gaussian``.
        token_dim: Code width (``vq`` dim, or ``gaussian`` channels; default 12 / 16).
        l2_norm: l2-normalised VQ (the legacy models use it).
        commitment_cost: VQ ``beta``.
        legacy: The released L-32/B-64/S-128 architecture: legacy encoder reshape
            and a ``proxy`` head predicting MaskGIT-VQGAN codes.
        pixel_decoder: Append the MaskGIT-VQGAN pixel decoder (stage 2), or the
            decoder [`Part`][tokenkit.specs.Part] to append. Defaults to
            ``legacy``; ``False`` with ``legacy`` is the stage-1 model.
        backbone: Backbone part used by encoder and decoder.
        text_encoder: A text encoder [`Part`][tokenkit.specs.Part] (kind ``text_encoder``) makes the decoder
            text-aware, as TA-TiTok's: it reads the encoder's token embeddings (width and length taken from
            the part) and ``detokenize(ids, text=...)`` takes prompts. ``True``: TA-TiTok's OpenCLIP
            ViT-L-14-336; ``None`` / ``False``: no text.

    Raises:
        ConfigError: Incompatible knob values, before any module is built.
    """
    if isinstance(image_size, list):
        image_size = tuple(image_size)
    text_encoder = text_encoder_part(text_encoder)
    try:
        check_positive_ints(SimpleNamespace(patch_size=patch_size, num_tokens=num_tokens), "patch_size", "num_tokens")
        check_patch_divisible(image_size, patch_size)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if isinstance(quantizer, Part):
        if codebook_size is not None or token_dim is not None:
            raise ConfigError("codebook_size/token_dim apply to quantizer='vq' or 'gaussian' given by name; "
                              "set them on the quantizer Part instead")
        q_part = quantizer
    elif quantizer == "vq":
        q_part = Part("vq", codebook_size=4096 if codebook_size is None else codebook_size,
                      dim=12 if token_dim is None else token_dim, l2_norm=l2_norm, commitment_cost=commitment_cost)
    elif quantizer == "gaussian":
        if codebook_size is not None:
            raise ConfigError(f"codebook_size={codebook_size} does not apply to the continuous 'gaussian' bottleneck")
        q_part = Part("gaussian", channels=16 if token_dim is None else token_dim)
    else:
        if codebook_size is not None or token_dim is not None:
            raise ConfigError(f"codebook_size/token_dim apply to quantizer='vq' or 'gaussian'; quantizer={quantizer!r} "
                              "takes its options from a Part: quantizer=tk.Part(name, ...)")
        q_part = Part(quantizer)
    if pixel_decoder is None:
        pixel_decoder = legacy
    if pixel_decoder and not legacy:
        raise ConfigError("pixel_decoder=True needs legacy=True (the pixel decoder reads proxy-code logits)")
    if pixel_decoder is True and patch_size != VQGAN_UPSAMPLING:
        raise ConfigError(f"patch_size={patch_size} does not fit the two-stage (legacy) model: its MaskGIT-VQGAN "
                          f"pixel decoder upsamples by {VQGAN_UPSAMPLING}. Use legacy=False for a single-stage "
                          "TiTok with this patch size (or pixel_decoder=False for the stage-1 model alone)")
    geometry = dict(image_size=image_size, patch_size=patch_size, num_tokens=num_tokens)
    encoder = Part("vit1d", **geometry, legacy_reshape=legacy, backbone=_backbone(encoder_size, backbone, "encoder_size"))
    decoder = Part("vit1d", **geometry, head="proxy" if legacy else "pixel",
                   backbone=_backbone(decoder_size, backbone, "decoder_size"), **_text_options(text_encoder))
    if isinstance(pixel_decoder, Part):
        pixel = pixel_decoder
    else:
        pixel = Part("vqgan", codebook_size=1024) if pixel_decoder else None
    return TokenizerSpec(encoder=encoder, quantizer=q_part, decoder=decoder, pixel_decoder=pixel,
                         text_encoder=text_encoder)


titok.knob_options = {"quantizer": ("codebook_size", "token_dim", "l2_norm", "commitment_cost")}
"""Registered values of these knobs are not carried over when ``quantizer`` changes (see ``tk.spec``)."""


def _text_options(text_encoder: Part | None) -> dict[str, int]:
    """The decoder options (``text_dim``, ``text_length``) that read ``text_encoder``'s token embeddings."""
    if text_encoder is None:
        return {}
    config = resolve_part("text_encoder", text_encoder)
    width, length = getattr(config, "text_width", None), getattr(config, "text_length", None)
    if width is None or length is None:
        raise ConfigError(f"cannot tell the width of text encoder {text_encoder.name!r} (is its package installed? "
                          "pip install \"tokenkit[text]\")")
    return {"text_dim": width, "text_length": length}


def _legacy(n: int, size: str) -> dict[str, Any]:
    return dict(num_tokens=n, encoder_size=size, decoder_size=size, codebook_size=4096, token_dim=12,
                l2_norm=True, legacy=True)


def _vq8k(n: int, enc: str) -> dict[str, Any]:
    return dict(num_tokens=n, encoder_size=enc, decoder_size="large", codebook_size=8192, token_dim=64)


def _vae(n: int, enc: str) -> dict[str, Any]:
    return dict(num_tokens=n, encoder_size=enc, decoder_size="large", quantizer="gaussian", token_dim=16)


REFERENCE_MODELS: dict[str, dict[str, Any]] = {
    "titok-l32": _legacy(32, "large"),
    "titok-b64": _legacy(64, "base"),
    "titok-s128": _legacy(128, "small"),
    "titok-bl64-vq8k": _vq8k(64, "base"),
    "titok-bl128-vq8k": _vq8k(128, "base"),
    "titok-sl256-vq8k": _vq8k(256, "small"),
    "titok-ll32-vae": _vae(32, "large"),
    "titok-bl64-vae": _vae(64, "base"),
    "titok-bl128-vae": _vae(128, "base"),
    "titok-tiny": dict(image_size=32, patch_size=8, num_tokens=8, encoder_size="tiny", decoder_size="tiny",
                       codebook_size=256, token_dim=8),
    "titok": {},
}
"""Knobs of every named TiTok composition."""

DESCRIPTIONS = {"titok": "single-stage TiTok (ViT-B/16 encoder and decoder, 32 tokens, VQ 4096 x 12) with the "
                        "builder's defaults: the starting point for custom compositions (see tk.knobs('titok'))"}
"""Descriptions of the models that are not a released checkpoint."""


def _hub_repo(repo_id: str) -> WeightSource:
    """An official ``PyTorchModelHubMixin`` repo: ``config.json`` + ``model.safetensors`` (sha256 not recorded)."""
    return WeightSource(repo_id, "model.safetensors", config="config.json")


OFFICIAL_WEIGHTS: dict[str, WeightSource] = {
    name: _hub_repo(f"yucornetto/tokenizer_{repo}_imagenet") for name, repo in {
        "titok-l32": "titok_l32", "titok-b64": "titok_b64", "titok-s128": "titok_s128",
        "titok-bl64-vq8k": "titok_bl64_vq8k", "titok-bl128-vq8k": "titok_bl128_vq8k",
        "titok-sl256-vq8k": "titok_sl256_vq8k", "titok-ll32-vae": "titok_ll32_vae_c16",
        "titok-bl64-vae": "titok_bl64_vae_c16", "titok-bl128-vae": "titok_bl128_vae_c16",
    }.items()
}
"""The released TiTok tokenizers: the Hub repos of ``README_TiTok.md`` (bytedance/1d-tokenizer), which
``TiTok.from_pretrained`` loads; ``tk.build(name, pretrained=True)`` fetches them."""

for _name, _knobs in REFERENCE_MODELS.items():
    register_model(_name, titok, DESCRIPTIONS.get(_name, ""), weights=OFFICIAL_WEIGHTS.get(_name), **_knobs)
