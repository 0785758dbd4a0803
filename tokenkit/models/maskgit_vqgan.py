"""The MaskGIT-VQGAN f16 ImageNet tokenizer: TiTok's stage-1 teacher.

Official: ``PretrainedTokenizer``, ``modeling/titok.py`` L35-73; its parts in
``modeling/modules/maskgit_vqgan.py``.

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200.

A 256x256 image becomes a row-major 16x16 grid of ids over a 1024-entry
codebook of 256-wide codes. The official ``PretrainedTokenizer.decode`` clamps
to [0, 1]; so does [`Tokenizer.detokenize`][tokenkit.models.tokenizer.Tokenizer.detokenize]::

    tok = tk.build("maskgit-vqgan")
    ids = tok.tokenize(images)        # (B, 256)
"""

from __future__ import annotations

from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import Part, TokenizerSpec


def maskgit_vqgan(*, image_size: int = 256) -> TokenizerSpec:
    """The MaskGIT-VQGAN composition: ``vqgan`` encoder, quantizer and decoder at their released defaults.

    Args:
        image_size: Input resolution (a multiple of 16); the released weights were trained at 256.

    Returns:
        The [`TokenizerSpec`][tokenkit.specs.TokenizerSpec]; ``N = (image_size / 16)**2`` tokens.

    Examples:
        >>> import tokenkit as tk
        >>> tok = tk.build("maskgit-vqgan", device="meta")
        >>> tok.num_tokens, tok.codebook_size, sum(p.numel() for p in tok.parameters())
        (256, 1024, 54515587)
    """
    return TokenizerSpec(encoder=Part("vqgan", image_size=image_size), quantizer=Part("vqgan"),
                         decoder=Part("vqgan"))


OFFICIAL_WEIGHTS = WeightSource("fun-research/TiTok", "maskgit-vqgan-imagenet-f16-256.bin")
"""The converted MaskGIT-VQGAN weights released with TiTok (``README_TiTok.md``; sha256 not recorded)."""

register_model("maskgit-vqgan", maskgit_vqgan, weights=OFFICIAL_WEIGHTS,
               description="MaskGIT-VQGAN f16 ImageNet tokenizer (TiTok's stage-1 teacher), 16x16 ids over K=1024")
