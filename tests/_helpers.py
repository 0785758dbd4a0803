"""Shared test helpers: the official key listings and tiny versions of the reference compositions."""

from __future__ import annotations

from pathlib import Path

import torch

import tokenkit as tk
from tokenkit.text_encoders.openclip import TINY as TINY_TEXT

KEYS_DIR = Path(__file__).resolve().parent / "fixtures" / "official_keys"

TINY_VQGAN = dict(hidden_channels=16, channel_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=8, norm_groups=8)
"""A MaskGIT-VQGAN pixel decoder upsampling by 8 (= the tiny patch size)."""


def official_keys(name: str) -> dict[str, tuple[int, ...]]:
    """``{key: shape}`` of an official checkpoint listing (``tests/fixtures/official_keys/NAME.txt``)."""
    path = KEYS_DIR / f"{name}.txt"
    rows = (line.split("\t") for line in path.read_text().splitlines() if line.strip())
    return {key: tuple(int(s) for s in shape.strip("()").split(",") if s.strip()) for key, shape, *_ in rows}


def tiny_spec(name: str) -> tk.TokenizerSpec | tk.GeneratorSpec:
    """The reference composition ``name`` at tiny size (same parts, small numbers)."""
    if name.startswith("rar-"):
        return tk.spec(name, width=16, depth=2, heads=2, mlp_dim=32, codebook_size=64, num_tokens=4, num_classes=5)
    if name.startswith("maskgit-titok") or name == "maskgit-tiny":
        return tk.spec(name, width=16, depth=2, heads=2, mlp_dim=32, codebook_size=64, num_tokens=4, num_classes=5)
    if name.startswith("maskgen-vq"):
        return tk.spec(name, width=16, depth=2, heads=2, codebook_size=64, num_tokens=4, num_classes=5,
                       text_encoder=TINY_TEXT, text_dim=16, pooled_dim=16, micro_condition_dim=8)
    if name.startswith("maskgen-kl"):
        return tk.spec(name, width=16, depth=1, heads=2, head_width=16, head_depth=1, num_tokens=4, token_dim=2,
                       text_encoder=TINY_TEXT, text_dim=16, pooled_dim=16, micro_condition_dim=8, steps=2,
                       diffusion_steps=2)
    if name == "maskgit-vqgan":
        vqgan = dict(TINY_VQGAN, channel_mult=(1, 2))
        return tk.TokenizerSpec(encoder=tk.Part("vqgan", image_size=16, **vqgan),
                                quantizer=tk.Part("vqgan", codebook_size=16, dim=8), decoder=tk.Part("vqgan", **vqgan))
    knobs = dict(image_size=32, patch_size=8, num_tokens=4, encoder_size="tiny", decoder_size="tiny")
    if getattr(tk.spec(name), "text_encoder", None) is not None:  # TA-TiTok: a tiny random text tower, no download
        knobs["text_encoder"] = TINY_TEXT
    if tk.spec(name).pixel_decoder is not None:
        knobs["pixel_decoder"] = tk.Part("vqgan", codebook_size=1024, **TINY_VQGAN)
    return tk.spec(name, **knobs)


def nested_equal(a, b) -> bool:
    """Whether two nested structures of tensors (dicts, lists, tuples, scalars) are equal bit for bit,
    tensor dtypes included."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(nested_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(nested_equal, a, b))
    return a == b
