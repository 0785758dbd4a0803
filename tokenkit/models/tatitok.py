"""TA-TiTok reference compositions: TiTok with a text-aware decoder and a CLIP text encoder.

"Democratizing Text-to-Image Masked Generative Models with Compact Text-Aware One-Dimensional Tokens"
(TA-TiTok), https://arxiv.org/abs/2501.07730. Official: ``TATiTok``, ``modeling/tatitok.py`` and
``TATiTokDecoder``, ``modeling/modules/blocks.py`` L385-424 (bytedance/1d-tokenizer), configured by
``configs/infer/TA-TiTok/*.yaml``: single-stage (non-legacy) TiTok, a ViT-B (or S) encoder and a ViT-L
decoder that also reads the 77 token embeddings of OpenCLIP's ``ViT-L-14-336`` / ``openai`` text
transformer (after ``ln_final``). Each model is [`titok`][tokenkit.models.titok.titok] with a
``text_encoder`` knob::

    tok = tk.build("tatitok-bl32-vq", pretrained=True)      # + CLIP text weights from the Hub
    ids = tok.tokenize(images)
    images = tok.detokenize(ids, text=["A photo of a jay."] * len(ids))
"""

from __future__ import annotations

from typing import Any

from tokenkit.models.titok import _hub_repo, _vae, _vq8k, titok
from tokenkit.registry import register_model
from tokenkit.text_encoders.openclip import OPENAI_VIT_L14_336, TINY

REFERENCE_MODELS: dict[str, dict[str, Any]] = {
    "tatitok-bl32-vq": _vq8k(32, "base"),
    "tatitok-bl64-vq": _vq8k(64, "base"),
    "tatitok-bl128-vq": _vq8k(128, "base"),
    "tatitok-bl32-vae": _vae(32, "base"),
    "tatitok-bl64-vae": _vae(64, "base"),
    "tatitok-sl128-vae": _vae(128, "small"),
}
"""Knobs of the six released TA-TiTok tokenizers (``configs/infer/TA-TiTok/tatitok_*.yaml``)."""

OFFICIAL_WEIGHTS = {name: _hub_repo("turkeyju/tokenizer_" + name.replace("-", "_")) for name in REFERENCE_MODELS}
"""The Hub repos of ``README_MaskGen.md`` (``TATiTok.from_pretrained("turkeyju/tokenizer_tatitok_bl32_vq")``)."""

for _name, _knobs in REFERENCE_MODELS.items():
    register_model(_name, titok, weights=OFFICIAL_WEIGHTS[_name], text_encoder=OPENAI_VIT_L14_336, **_knobs)

register_model("tatitok-tiny", titok, "tiny text-aware TiTok (32 px, 8 tokens, tiny random CLIP text tower): tests "
               "and offline recipes", image_size=32, patch_size=8, num_tokens=8, encoder_size="tiny",
               decoder_size="tiny", codebook_size=256, token_dim=8, text_encoder=TINY)
