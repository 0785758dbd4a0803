"""The paper's 512x512 TiTok models as compositions (no weights were released for them).

"An Image is Worth 32 Tokens for Reconstruction and Generation", arXiv 2406.07550, Table 2 (ImageNet
512x512): TiTok-L-64 (gFID 2.74, the abstract's 410x faster than DiT-XL/2) and TiTok-B-128 (gFID 2.13,
74x faster), with MaskGIT generators over their tokens. They are the 256 px two-stage tokenizers with
twice the image side and twice the tokens: ViT-L (resp. ViT-B) encoder and decoder with patch size 16,
so a 32x32 patch grid, the legacy VQ (4096 x 12) and the MaskGIT-VQGAN pixel decoder, whose 16x
upsampling of the 32x32 proxy codes gives 512 px. The generators are the ImageBert ones of the 256 px
models over 64 (resp. 128) tokens, with the 256 px models' sampling settings (the 512 px ones were not
published)::

    tok = tk.build("titok-l64-512")        # random weights: train, or load 256 px weights (resampled)
    gen = tk.build("maskgit-titok-l64-512")
"""

from __future__ import annotations

from tokenkit.models.generators import REFERENCE_GENERATORS, maskgit
from tokenkit.models.titok import REFERENCE_MODELS, titok
from tokenkit.registry import register_model

TOKENIZERS_512 = {
    "titok-l64-512": dict(REFERENCE_MODELS["titok-l32"], image_size=512, num_tokens=64),
    "titok-b128-512": dict(REFERENCE_MODELS["titok-b64"], image_size=512, num_tokens=128),
}
"""Knobs of the 512 px tokenizers: the 256 px TiTok-L-32 / B-64 at twice the side and twice the tokens."""

GENERATORS_512 = {
    "maskgit-titok-l64-512": dict(REFERENCE_GENERATORS["maskgit-titok-l32"], num_tokens=64),
    "maskgit-titok-b128-512": dict(REFERENCE_GENERATORS["maskgit-titok-b64"], num_tokens=128),
}
"""Knobs of their generators: the 256 px ImageBert generators over 64 / 128 tokens."""

for _name, _knobs in TOKENIZERS_512.items():
    register_model(_name, titok, "paper's 512x512 model (arXiv 2406.07550 Table 2); no released weights", **_knobs)
for _name, _knobs in GENERATORS_512.items():
    register_model(_name, maskgit, "generator of the paper's 512x512 model; no released weights", **_knobs)
