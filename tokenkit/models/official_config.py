"""Reading the official TiTok ``config.json`` (the OmegaConf tree the official
``TiTok`` / ``ImageBert`` save to the Hub) into a tokenkit composition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenkit.errors import WeightsError
from tokenkit.models.generators import maskgit
from tokenkit.models.maskgen import knobs_from_official as maskgen_knobs_from_official
from tokenkit.models.maskgen import maskgen
from tokenkit.models.maskgen_kl import maskgen_kl, maskgen_kl_knobs_from_official
from tokenkit.models.titok import titok
from tokenkit.specs import GeneratorSpec, Part, TokenizerSpec
from tokenkit.text_encoders.openclip import OPENAI_VIT_L14_336


def official_tree(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The official config tree in ``data`` (possibly wrapped in ``{"config": ...}``), or ``None``."""
    if isinstance(data.get("config"), Mapping):
        data = data["config"]
    model = data.get("model")
    return data if isinstance(model, Mapping) and isinstance(model.get("vq_model"), Mapping) else None


def titok_knobs_from_official(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Knobs of [`titok`][tokenkit.models.titok.titok] equivalent to an official config tree.

    Applies the official defaults where keys are absent (``quantize_mode`` "vq",
    ``is_legacy`` True, ``finetune_decoder`` True; official ``modeling/titok.py`` L85-92 and
    ``modeling/modules/blocks.py`` L225). A One-D-Piece config (``model.type: one_d_piece``,
    turingmotors/One-D-Piece ``configs/one-d-piece_*256.yaml``) gets its tail token drop
    (a ``tail-drop`` bottleneck with ``fill="truncate"``).

    Raises:
        WeightsError: A combination the official code rejects or tokenkit cannot express.
    """
    vq = tree["model"]["vq_model"]
    mode = vq.get("quantize_mode", "vq")
    legacy = bool(vq.get("is_legacy", True))
    finetune = bool(vq.get("finetune_decoder", True))
    if mode not in ("vq", "vae"):
        raise WeightsError(f"official config: unsupported quantize_mode {mode!r} (expected 'vq' or 'vae')")
    if finetune and mode != "vq":
        raise WeightsError("official config: finetune_decoder with quantize_mode 'vae' is not a valid TiTok "
                           "(set finetune_decoder: false)")
    if finetune and not legacy:
        raise WeightsError("official config: finetune_decoder needs the legacy proxy-code decoder (is_legacy: true)")
    patch = vq.get("vit_enc_patch_size", 16)
    if vq.get("vit_dec_patch_size", patch) != patch:
        raise WeightsError("official config: different encoder and decoder patch sizes are not supported")
    try:
        knobs: dict[str, Any] = dict(
            image_size=int(tree.get("dataset", {}).get("preprocessing", {}).get("crop_size", 256)),
            patch_size=int(patch),
            num_tokens=int(vq["num_latent_tokens"]),
            encoder_size=vq["vit_enc_model_size"],
            decoder_size=vq["vit_dec_model_size"],
            token_dim=int(vq["token_size"]),
            legacy=legacy,
            pixel_decoder=finetune,
        )
        if mode == "vq":
            knobs.update(quantizer="vq", codebook_size=int(vq["codebook_size"]), l2_norm=bool(vq["use_l2_norm"]),
                         commitment_cost=float(vq.get("commitment_cost", 0.25)))
        else:
            knobs.update(quantizer="gaussian")
    except KeyError as err:
        raise WeightsError(f"official config: model.vq_model has no {err.args[0]!r}") from None
    if tree["model"].get("type") == "one_d_piece" and mode == "vq":  # One-D-Piece's config: tail token drop
        inner = Part("vq", codebook_size=knobs.pop("codebook_size"), dim=knobs.pop("token_dim"),
                     l2_norm=knobs.pop("l2_norm"), commitment_cost=knobs.pop("commitment_cost"))
        knobs["quantizer"] = Part("tail-drop", fill="truncate", min_tokens=1, drop_prob=1.0, quantizer=inner)
    return knobs


def spec_from_official_config(data: Mapping[str, Any], *, text_aware: bool = False) -> TokenizerSpec:
    """The tokenkit composition of an official TiTok config (legacy/non-legacy, VQ/VAE, sizes, tokens).

    Args:
        data: The config (``config.json`` of a Hub repo, or a YAML of ``configs/infer``).
        text_aware: A TA-TiTok checkpoint (its weights hold ``decoder.text_guidance_proj``): the decoder reads
            OpenCLIP ViT-L/14-336 token embeddings (``text_embed_dim`` 768, ``text_context_length`` 77, the
            only values ``TATiTokDecoder`` was released with).

    Raises:
        WeightsError: Not an official TiTok config, or an unsupported combination.
    """
    tree = official_tree(data)
    if tree is None:
        raise WeightsError("not an official TiTok config (expected a 'model.vq_model' section)")
    knobs = titok_knobs_from_official(tree)
    if text_aware:
        vq = tree["model"]["vq_model"]
        if (vq.get("text_embed_dim", 768), vq.get("text_context_length", 77)) != (768, 77):
            raise WeightsError("official TA-TiTok config: only text_embed_dim 768 and text_context_length 77 (OpenCLIP "
                               f"ViT-L-14-336) are supported, got {vq.get('text_embed_dim')} and "
                               f"{vq.get('text_context_length')}")
        knobs["text_encoder"] = OPENAI_VIT_L14_336
    return titok(**knobs)


def _resolve(tree: Mapping[str, Any], value: Any) -> Any:
    """Resolve an unresolved OmegaConf interpolation such as ``"${model.vq_model.num_latent_tokens}"``."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        node: Any = tree
        for key in value[2:-1].split("."):
            if not isinstance(node, Mapping) or key not in node:
                raise WeightsError(f"official config: cannot resolve {value}")
            node = node[key]
        return node
    return value


def generator_knobs_from_official(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Knobs of [`maskgit`][tokenkit.models.generators.maskgit] equivalent to an official config tree.

    ``model_type`` "ViT" is ImageBert (``bert`` backbone), "UViT" is UViTBert (``uvit``).
    The sampling defaults are the config's, with softmax annealing on as in the
    official ImageNet sampling script.

    Raises:
        WeightsError: No ``model.generator`` section, an unknown model type or a missing key.
    """
    gen = tree["model"].get("generator")
    if not isinstance(gen, Mapping):
        raise WeightsError("official config has no model.generator section")
    model_type = gen.get("model_type", "ViT")
    backbones = {"ViT": "bert", "UViT": "uvit"}
    if model_type not in backbones:
        raise WeightsError(f"official config: unsupported generator model_type {model_type!r} (ViT or UViT)")
    try:
        return dict(
            codebook_size=int(tree["model"]["vq_model"]["codebook_size"]),
            num_tokens=int(_resolve(tree, gen["image_seq_len"])),
            num_classes=int(gen["condition_num_classes"]),
            backbone=backbones[model_type],
            width=int(gen["hidden_size"]),
            depth=int(gen["num_hidden_layers"]),
            heads=int(gen["num_attention_heads"]),
            mlp_dim=int(gen["intermediate_size"]),
            dropout=float(gen.get("dropout", 0.1)),
            label_dropout=float(gen.get("class_label_dropout", 0.1)),
            steps=int(gen.get("num_steps", 8)),
            guidance=float(gen.get("guidance_scale", 3.0)),
            guidance_decay=gen.get("guidance_decay", "constant"),
            guidance_pow=float(gen.get("guidance_scale_pow", 3.0)),
            temperature=float(gen.get("randomize_temperature", 4.5)),
            softmax_annealing=True,
        )
    except KeyError as err:
        raise WeightsError(f"official config: model.generator has no {err.args[0]!r}") from None


def generator_spec_from_official_config(data: Mapping[str, Any], layout: str = "imagebert") -> GeneratorSpec:
    """The tokenkit composition of an official generator config: ImageBert / UViTBert (``model.generator``),
    or MaskGen-VQ / MaskGen-KL (``model.maskgen``; ``layout`` ``"maskgen-vq"`` / ``"maskgen-kl"``, as
    [`detect_layout`][tokenkit.weights.official.detect_layout] names the weights)."""
    tree = official_tree(data)
    if tree is None:
        raise WeightsError("not an official TiTok config (expected a 'model' section)")
    try:
        if layout == "maskgen-vq":
            return maskgen(**maskgen_knobs_from_official(tree))
        if layout == "maskgen-kl":
            return maskgen_kl(**maskgen_kl_knobs_from_official(tree))
    except KeyError as err:
        raise WeightsError(f"official MaskGen config: no {err.args[0]!r}") from None
    return maskgit(**generator_knobs_from_official(tree))
