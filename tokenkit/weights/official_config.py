"""Reading the official TiTok ``config.json`` (the OmegaConf tree the official
``TiTok`` saves to the Hub) into a tokenkit composition."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenkit.errors import WeightsError
from tokenkit.models.titok import titok
from tokenkit.specs import TokenizerSpec


def official_tree(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The official config tree in ``data`` (possibly wrapped in ``{"config": ...}``), or ``None``."""
    if isinstance(data.get("config"), Mapping):
        data = data["config"]
    model = data.get("model")
    return data if isinstance(model, Mapping) and isinstance(model.get("vq_model"), Mapping) else None


def titok_knobs_from_official(tree: Mapping[str, Any]) -> dict[str, Any]:
    """Knobs of [`titok`][tokenkit.models.titok.titok] equivalent to an official config tree.

    Applies the official defaults where keys are absent (``quantize_mode`` "vq",
    ``is_legacy`` True, ``finetune_decoder`` True; TITOK_SPEC §1.2).

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
    return knobs


def spec_from_official_config(data: Mapping[str, Any]) -> TokenizerSpec:
    """The tokenkit composition of an official TiTok config (legacy/non-legacy, VQ/VAE, sizes, tokens).

    Raises:
        WeightsError: Not an official TiTok config, or an unsupported combination.
    """
    tree = official_tree(data)
    if tree is None:
        raise WeightsError("not an official TiTok config (expected a 'model.vq_model' section)")
    return titok(**titok_knobs_from_official(tree))
