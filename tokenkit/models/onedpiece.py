"""One-D-Piece reference compositions: TiTok with One-D-Piece's tail token drop.

"One-D-Piece: Image Tokenizer Meets Quality-Controllable Compression", https://arxiv.org/abs/2501.10064
(turingmotors/One-D-Piece: ``modeling/one_d_piece.py``, ``modeling/titok.py``, ``modeling/modules/blocks.py``,
``configs/one-d-piece_{l,b,s}256.yaml``, ``scripts/inference_tokenizer.py``).

A One-D-Piece tokenizer is the legacy two-stage TiTok (legacy encoder reshape, l2-normalised VQ
4096 x 12, ``proxy`` head over MaskGIT-VQGAN codes, MaskGIT-VQGAN pixel decoder) with 256 tokens,
trained with "Tail Token Drop": in training each batch keeps its first ``k`` tokens, ``k``
uniform in ``[1, 256]``, and the decoder reads only those ``k`` (no mask code fills the
tail). Decoding the first ``k`` ids is the same: ``tok.detokenize(ids[:, :k])``. In tokenkit
it is [`titok`][tokenkit.models.titok.titok] with a ``tail-drop`` bottleneck with
``fill="truncate"`` around the TiTok ``vq`` (no extra parameter; the released checkpoints
keep the 1d-tokenizer TiTok layout and load through the same converter)::

    tok = tk.build("onedpiece-s256", pretrained=True)   # or pretrained="One-D-Piece-S-256/pytorch_model.bin"
    ids = tok.tokenize(images)            # (B, 256)
    coarse = tok.detokenize(ids[:, :16])  # the first 16 tokens

Hub sources (``pytorch_model.bin``, a raw state dict in the official TiTok layout):
``onedpiece-l256``: ``turing-motors/One-D-Piece-L-256``, ``onedpiece-b256``:
``turing-motors/One-D-Piece-B-256``, ``onedpiece-s256``: ``turing-motors/One-D-Piece-S-256``.
"""

from __future__ import annotations

from typing import Any

from tokenkit.models.titok import titok
from tokenkit.registry import register_model
from tokenkit.sources import WeightSource
from tokenkit.specs import Part

OFFICIAL_WEIGHTS: dict[str, WeightSource] = {
    f"onedpiece-{size.lower()}256": WeightSource(f"turing-motors/One-D-Piece-{size}-256", "pytorch_model.bin")
    for size in ("L", "B", "S")
}
"""Hub repos of the released tokenizers (``pytorch_model.bin``; ``tk.build(name, pretrained=True)``). Their
``config.json`` is One-D-Piece's, not read: the name decides the composition."""

TAIL_TOKEN_DROP = Part("tail-drop", fill="truncate", min_tokens=1, drop_prob=1.0,
                       quantizer=Part("vq", codebook_size=4096, dim=12, l2_norm=True, commitment_cost=0.25))
"""One-D-Piece's bottleneck: ``OneDPiece.apply_tail_token_drop`` (one ``k`` in ``[1, N]`` per batch, the tail
removed) around TiTok's l2-normalised VQ (``configs/one-d-piece_*256.yaml``: 4096 x 12, beta 0.25)."""


def _one_d_piece(size: str) -> dict[str, Any]:
    return dict(num_tokens=256, encoder_size=size, decoder_size=size, quantizer=TAIL_TOKEN_DROP, legacy=True)


REFERENCE_MODELS: dict[str, dict[str, Any]] = {
    "onedpiece-l256": _one_d_piece("large"),
    "onedpiece-b256": _one_d_piece("base"),
    "onedpiece-s256": _one_d_piece("small"),
}
"""Knobs of the One-D-Piece compositions (``configs/one-d-piece_{l,b,s}256.yaml``)."""

_SIZES = {"large": "L", "base": "B", "small": "S"}

for _name, _knobs in REFERENCE_MODELS.items():
    register_model(_name, titok, f"One-D-Piece-{_SIZES[_knobs['encoder_size']]}-256 (arXiv 2501.10064): two-stage "
                   "TiTok, 256 tokens, VQ 4096 x 12, tail token drop (decode any prefix); "
                   f"weights: {OFFICIAL_WEIGHTS[_name].repo_id}", weights=OFFICIAL_WEIGHTS[_name], **_knobs)
