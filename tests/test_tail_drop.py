"""Nested tokens: the tail-drop wrapper, prefix decoding, and PSNR growing with the prefix length."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import ContractError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import tail_drop  # noqa: E402  (the example's training loop)


def test_training_replaces_the_tail_by_the_mask_code():
    tok = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop", min_tokens=2)))
    quantizer = tok.quantizer.train()
    torch.manual_seed(0)
    latents = torch.randn(64, 8, quantizer.config.in_dim)
    codes = quantizer(latents).codes
    is_mask = (codes == quantizer.mask_code).all(-1)
    kept = (~is_mask).sum(-1)
    assert kept.min() >= 2 and kept.max() == 8 and len(kept.unique()) > 3
    assert all(torch.equal(m, torch.arange(8) >= k) for m, k in zip(is_mask, kept))  # only a tail is masked
    eval_codes = quantizer.eval()(latents).codes
    assert torch.equal(eval_codes, quantizer.quantizer(latents).codes)  # eval: identity


def test_prefix_decoding():
    tok = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop")))
    images = torch.rand(2, 3, 32, 32)
    ids = tok.tokenize(images)
    assert tok.supports_prefix
    for k in (1, 5, 8):
        assert tok.detokenize(ids[:, :k]).shape == images.shape
    codes = tok.quantizer.lookup(ids[:, :3])
    assert torch.equal(tok.decode(codes), tok.decode(tok.quantizer.pad_codes(codes, 8)))
    with pytest.raises(ContractError, match=r"\(B, 8\)"):
        tok.detokenize(torch.zeros(2, 9, dtype=torch.long))
    plain = tk.build("titok-tiny")
    with pytest.raises(ContractError, match=r"shape \(B, 8\)"):
        plain.detokenize(ids[:, :3])  # without tail drop a prefix is an error


def test_wraps_any_quantizer_and_round_trips(tmp_path):
    for inner in (tk.Part("vq", codebook_size=64, dim=8), tk.Part("fsq", levels=(4, 4)), tk.Part("gaussian", channels=4)):
        spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop", quantizer=inner))
        tok = tk.build(spec)
        assert tok.codebook_size == getattr(tok.quantizer.quantizer, "codebook_size", None)
        tok.save_pretrained(tmp_path / inner.name)
        again = tk.from_pretrained(tmp_path / inner.name)
        images = torch.rand(2, 3, 32, 32)
        assert torch.equal(again(images).images, tok(images).images)
    with pytest.raises(tk.ConfigError, match="cannot wrap another tail-drop"):
        tk.Part("tail-drop", quantizer=tk.Part("tail-drop")) and tk.spec("titok-tiny").replace(
            quantizer=tk.Part("tail-drop", quantizer=tk.Part("tail-drop")))


def test_psnr_grows_with_the_prefix_length():
    """A tiny tail-drop tokenizer trained briefly on the bundled images reconstructs better from longer prefixes."""
    torch.manual_seed(0)
    tok = tk.build(tk.spec("titok-tiny").replace(
        quantizer=tk.Part("tail-drop", quantizer=tk.Part("fsq", levels=(8, 5, 5, 5)))))
    tail_drop.train(tok, 800)
    held_out = tk.data.sample_images(32, per_image=16, resize=64, seed=123)
    values = tail_drop.prefix_psnr(tok, held_out)
    assert values[-1] > values[0] + 0.5, values
    assert all(b >= a - 0.1 for a, b in zip(values, values[1:])), values  # no real drop anywhere
