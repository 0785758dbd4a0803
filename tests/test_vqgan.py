"""MaskGIT-VQGAN parts: ``vqgan`` encoder, quantizer, decoder and the ``maskgit-vqgan`` model."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from _helpers import official_keys

import tokenkit as tk
from tokenkit.decoders.vqgan import VQGANDecoderConfig
from tokenkit.encoders.vqgan import VQGANEncoderConfig
from tokenkit.layers import ResnetBlock
from tokenkit.layers.vqgan_blocks import upsample_conv
from tokenkit.quantizers.vqgan import VQGANQuantizerConfig

TINY = dict(hidden_channels=32, channel_mult=(1, 2), num_res_blocks=1, z_channels=8, norm_groups=8)


def tiny_spec(codebook_size: int = 16) -> tk.TokenizerSpec:
    return tk.TokenizerSpec(encoder=tk.Part("vqgan", image_size=16, **TINY),
                            quantizer=tk.Part("vqgan", codebook_size=codebook_size, dim=8),
                            decoder=tk.Part("vqgan", **TINY))


def shapes(module: torch.nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


# ---- shapes and contracts --------------------------------------------------------------------------------------
def test_tiny_tokenizer_shapes():
    torch.manual_seed(0)
    tok = tk.build(tiny_spec())
    images = torch.rand(2, 3, 16, 16)
    latents = tok.encoder(images)
    assert latents.shape == (2, 64, 8)
    ids = tok.tokenize(images)
    assert ids.shape == (2, 64) and ids.dtype == torch.int64 and 0 <= ids.min() and ids.max() < 16
    out = tok(images)
    assert out.images.shape == (2, 3, 16, 16) and out.codes.shape == (2, 64, 8)
    rec = tok.detokenize(ids)
    assert rec.shape == (2, 3, 16, 16) and 0.0 <= rec.min() and rec.max() <= 1.0
    torch.testing.assert_close(tok.quantizer.lookup(ids), tok.quantizer(latents).codes)


def test_decoder_accepts_any_square_grid_and_rejects_others():
    dec = tk.build_part("decoder", tk.Part("vqgan", **TINY)).eval()
    assert dec.output_kind == "images"
    assert dec(torch.randn(1, 9, 8)).shape == (1, 3, 6, 6)
    with pytest.raises(ValueError, match="square"):
        dec(torch.randn(1, 10, 8))
    with pytest.raises(ValueError):
        dec(torch.randn(1, 9, 7))


def test_encoder_rejects_wrong_size():
    enc = tk.build_part("encoder", tk.Part("vqgan", image_size=16, **TINY))
    with pytest.raises(ValueError, match="16x16"):
        enc(torch.rand(1, 3, 8, 8))


def test_config_validation():
    with pytest.raises(tk.ConfigError, match="norm_groups"):
        tk.build_part("decoder", tk.Part("vqgan", hidden_channels=12, norm_groups=8))
    with pytest.raises(tk.ConfigError, match="divisible"):
        tk.build_part("encoder", tk.Part("vqgan", image_size=20))
    with pytest.raises(tk.ConfigError, match="l2_norm"):
        tk.build_part("quantizer", tk.Part("vqgan", l2_norm=True))
    assert VQGANDecoderConfig(channel_mult=[1, 2]).channel_mult == (1, 2)


@pytest.mark.parametrize("seed", range(4))
def test_tiny_configs_run(seed):
    rng = random.Random(seed)
    enc_cfg, dec_cfg = VQGANEncoderConfig.tiny(rng), VQGANDecoderConfig.tiny(rng)
    q_cfg = VQGANQuantizerConfig.tiny(rng)
    enc, dec = tk.encoders.VQGANEncoder(enc_cfg), tk.decoders.VQGANDecoder(dec_cfg)
    images = torch.rand(2, enc_cfg.in_channels, enc_cfg.image_size, enc_cfg.image_size)
    assert enc(images).shape == (2, enc_cfg.num_tokens, enc_cfg.out_dim)
    assert tk.quantizers.VQGANQuantizer(q_cfg)(torch.randn(2, 4, q_cfg.in_dim)).codes.shape == (2, 4, q_cfg.out_dim)
    side = 2 * dec_cfg.upsample_factor
    assert dec(torch.randn(2, 4, dec_cfg.in_dim)).shape == (2, dec_cfg.out_channels, side, side)


# ---- MaskGIT specifics -----------------------------------------------------------------------------------------
def test_resnet_block_shortcut_applies_to_output():
    torch.manual_seed(0)
    block = ResnetBlock(8, 16, norm_groups=4)
    x = torch.randn(2, 8, 5, 5)
    h = block.conv2(F.silu(block.norm2(block.conv1(F.silu(block.norm1(x))))))
    torch.testing.assert_close(block(x), h + block.nin_shortcut(h))  # x only reaches the output through h
    assert block.nin_shortcut.bias is None and block.nin_shortcut.weight.shape == (16, 16, 1, 1)
    same = ResnetBlock(8, 8, norm_groups=4)
    h = same.conv2(F.silu(same.norm2(same.conv1(F.silu(same.norm1(x))))))
    torch.testing.assert_close(same(x), h + x)
    assert same.nin_shortcut is None


def test_soft_decoding_equals_decoding_expected_code():
    torch.manual_seed(0)
    soft = tk.build_part("decoder", tk.Part("vqgan", codebook_size=16, **TINY)).eval()
    hard = tk.build_part("decoder", tk.Part("vqgan", **TINY)).eval()
    state = soft.state_dict()
    codebook = state.pop("codebook.weight")
    hard.load_state_dict(state, strict=True)
    logits = 3 * torch.randn(2, 4, 16)
    torch.testing.assert_close(soft(logits), hard(logits.softmax(-1) @ codebook))
    assert soft.config.in_dim == 16 and hard.config.in_dim == 8


def test_upsample_conv_is_nearest_upsampling_then_conv():
    """UpLevel runs "nearest x2, then 3x3 conv" as one transposed convolution: same values and gradients."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(6, 5, 3, padding=1)
    x = torch.randn(2, 6, 5, 7, requires_grad=True)
    ours = upsample_conv(x, conv)
    ref = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    grads = torch.autograd.grad(ours.square().sum(), (x, conv.weight, conv.bias))
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, conv.weight, conv.bias))
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4)


def test_no_grad_fast_path_equals_autograd_path():
    """Without autograd SiLU and residual adds run in place: same numbers, inputs untouched."""
    torch.manual_seed(0)
    dec = tk.build_part("decoder", tk.Part("vqgan", codebook_size=16, **TINY)).eval()
    logits = 3 * torch.randn(2, 16, 16)
    with_grad = dec(logits)
    assert with_grad.requires_grad
    before = logits.clone()
    with torch.no_grad():
        assert torch.equal(dec(logits), with_grad.detach())
    with torch.inference_mode():
        assert torch.equal(dec(logits), with_grad.detach())
    assert torch.equal(logits, before)
    block = ResnetBlock(8, 8, norm_groups=4)
    x = torch.randn(2, 8, 5, 5)
    x0 = x.clone()
    with torch.no_grad():
        block(x)
    assert torch.equal(x, x0)


def test_activation_layout():
    """Channels-last on CPU by default, NCHW on request, channels-last weights elsewhere; same numbers."""
    torch.manual_seed(0)
    dec = tk.build_part("decoder", tk.Part("vqgan", **TINY)).eval()
    codes = torch.randn(2, 16, 8)
    assert dec.channels_last is None and dec.memory_format() == torch.channels_last
    assert dec.memory_format(torch.device("meta")) == torch.contiguous_format
    out = dec(codes)
    assert out.is_contiguous()
    dec.channels_last = False
    assert dec.memory_format() == torch.contiguous_format
    torch.testing.assert_close(dec(codes), out, rtol=0, atol=1e-4)
    dec.channels_last = None
    dec.to(memory_format=torch.channels_last)
    assert dec.memory_format(torch.device("meta")) == torch.channels_last


def test_quantizer_puts_beta_on_codebook_term():
    torch.manual_seed(0)
    vq = tk.build_part("quantizer", tk.Part("vq", codebook_size=16, dim=8))
    vqgan = tk.build_part("quantizer", tk.Part("vqgan", codebook_size=16, dim=8, commitment_cost=0.25))
    vqgan.load_state_dict(vq.state_dict())
    grads = []
    for q in (vq, vqgan):
        latents = torch.arange(80.0).reshape(2, 5, 8).sin().requires_grad_()
        out = q(latents)
        torch.testing.assert_close(out.codes, q.lookup(out.indices))
        out.loss.backward()
        grads.append((latents.grad, q.embedding.weight.grad))
    (z_vq, e_vq), (z_gan, e_gan) = grads
    torch.testing.assert_close(z_gan, 4 * z_vq)  # commitment: 0.25 in vq, 1 in vqgan
    torch.testing.assert_close(e_gan, 0.25 * e_vq)  # codebook: 1 in vq, 0.25 in vqgan


# ---- sizes and official layout ---------------------------------------------------------------------------------
def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_default_parameter_counts():
    assert count(tk.build_part("decoder", tk.Part("vqgan"), device="meta")) == 30_478_339
    assert count(tk.build_part("decoder", tk.Part("vqgan", codebook_size=1024), device="meta")) == 30_740_483
    assert count(tk.build_part("encoder", tk.Part("vqgan"), device="meta")) == 23_775_104
    tok = tk.build("maskgit-vqgan", device="meta")
    assert count(tok) == 54_515_587
    assert (tok.num_tokens, tok.image_size, tok.codebook_size) == (256, 256, 1024)


def test_state_dict_matches_official_maskgit_vqgan():
    tok = tk.build("maskgit-vqgan", device="meta")
    ours = {**shapes(tok.encoder, "encoder."), **shapes(tok.decoder, "decoder."),
            **shapes(tok.quantizer, "quantize.")}
    assert ours == official_keys("maskgit_vqgan")


def test_pixel_decoder_matches_official_titok_s128():
    dec = tk.build_part("decoder", tk.Part("vqgan", codebook_size=1024), device="meta")
    ours = shapes(dec, "pixel_decoder.")
    ours["pixel_quantize.embedding.weight"] = ours.pop("pixel_decoder.codebook.weight")
    official = {k: v for k, v in official_keys("s128").items() if k.startswith("pixel_")}
    assert ours == official
