"""The Tokenizer API and its input validation."""

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import ContractError


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return tk.build("titok-tiny")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.rand(3, 3, 32, 32)


def test_tokenize_detokenize(tok, images):
    ids = tok.tokenize(images)
    assert ids.shape == (3, tok.num_tokens) and ids.dtype == torch.int64
    assert 0 <= ids.min() and ids.max() < tok.codebook_size
    rec = tok.detokenize(ids)
    assert rec.shape == images.shape and rec.min() >= 0 and rec.max() <= 1
    assert torch.equal(tok.detokenize(ids[:, None]), rec)  # official (B, 1, N) layout
    assert tok.bits_per_image == tok.num_tokens * 8


def test_forward_matches_encode_decode(tok, images):
    out = tok(images)
    assert isinstance(out, tk.TokenizerOutput)
    q = tok.encode(images)
    assert torch.equal(out.indices, q.indices)
    assert torch.allclose(out.images, tok.decode(q.codes))
    assert torch.allclose(tok.decode(tok.quantizer.lookup(q.indices)), out.images, atol=1e-5)


def test_training_gradients_reach_the_encoder(images):
    tok = tk.build("titok-tiny").train()
    out = tok(images)
    ((out.images - images).square().mean() + out.loss).backward()
    assert tok.encoder.patch_embed.weight.grad.abs().sum() > 0
    assert tok.quantizer.embedding.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(3, 32, 32), r"shape \(B, 3, H, W\), got \(3, 32, 32\)"),
        (torch.rand(1, 1, 32, 32), r"3 channels"),
        (torch.rand(1, 3, 30, 30), r"must be 32x32 .*got 30x30"),  # the size expected, not divisibility
        (torch.rand(1, 3, 64, 64), r"must be 32x32"),
        (torch.randint(0, 255, (1, 3, 32, 32)), r"float tensor in \[0, 1\], got dtype torch.int64"),
        (torch.rand(1, 3, 32, 32) * 255, r"values in \[0, 1\]"),
        ("an image", r"must be a torch.Tensor"),
    ],
)
def test_bad_images_raise(tok, bad, message):
    with pytest.raises(ContractError, match=message):
        tok.tokenize(bad)
    with pytest.raises(ContractError, match=message):
        tok(bad)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(2, 7, dtype=torch.long), r"shape \(B, 8\) or \(B, 1, 8\), got \(2, 7\)"),
        (torch.zeros(2, 8), r"integer tensor, got dtype torch.float32"),
        (torch.full((2, 8), 256), r"\[0, 256\).*\[256, 256\]"),
        (torch.full((2, 8), -1), r"\[0, 256\).*\[-1, -1\]"),
    ],
)
def test_bad_indices_raise(tok, bad, message):
    with pytest.raises(ContractError, match=message):
        tok.detokenize(bad)


def test_bad_codes_raise(tok):
    with pytest.raises(ContractError, match=r"codes must have shape \(B, 8, 8\)"):
        tok.decode(torch.randn(2, 8, 5))


def test_continuous_bottleneck_has_no_token_ids(images):
    tok = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("gaussian", channels=4)))
    assert tok.codebook_size is None and tok.bits_per_image is None
    with pytest.raises(ContractError, match="continuous"):
        tok.tokenize(images)
    with pytest.raises(ContractError, match="continuous"):
        tok.detokenize(torch.zeros(1, 8, dtype=torch.long))
    q = tok.encode(images)
    assert q.indices is None and q.codes.shape == (3, 8, 4)
    assert torch.equal(q.codes, tok.quantizer.posterior(tok.encoder(images)).mode())  # eval: the mean
    out = tok(images)
    assert out.images.shape == images.shape and out.indices is None


def test_stage1_composition_cannot_detokenize_to_pixels(images):
    spec = tk.spec("titok-tiny")
    spec = spec.replace(decoder=spec.decoder.with_options(head="proxy", proxy_codes=32))
    tok = tk.build(spec)
    logits = tok(images).images
    assert logits.shape == (3, 16, 32)
    with pytest.raises(ContractError, match="proxy-code logits"):
        tok.detokenize(tok.tokenize(images))


def tiny_legacy_spec(pixel_decoder=True):
    """The two-stage legacy TiTok structure at tiny size (patch 8 = vqgan upsampling 2**3)."""
    if pixel_decoder:
        pixel_decoder = tk.Part("vqgan", codebook_size=1024, hidden_channels=16, channel_mult=(1, 1, 2, 2),
                                num_res_blocks=1, z_channels=8, norm_groups=8)
    return tk.spec("titok-tiny", legacy=True, l2_norm=True, pixel_decoder=pixel_decoder)


def test_tiny_legacy_two_stage_composition(images):
    torch.manual_seed(0)
    spec = tiny_legacy_spec()
    assert spec.encoder.config["legacy_reshape"] and spec.decoder.config["head"] == "proxy"
    tok = tk.build(spec)
    assert tok.pixel_decoder.codebook.weight.shape == (1024, 8)
    ids = tok.tokenize(images)
    rec = tok.detokenize(ids)
    assert rec.shape == images.shape and 0 <= rec.min() and rec.max() <= 1
    # stage 2 = soft pixel decoding of the stage-1 proxy logits
    logits = tok.decoder(tok.quantizer.lookup(ids))
    assert logits.shape == (3, 16, 1024)
    assert torch.allclose(tok.pixel_decoder(logits).clamp(0, 1), rec, atol=1e-6)
    # the stage-1 model holds exactly the same weights minus the pixel decoder
    stage1 = tk.build(tiny_legacy_spec(pixel_decoder=False))
    state = {k: v for k, v in tok.state_dict().items() if not k.startswith("pixel_decoder.")}
    stage1.load_state_dict(state, strict=True)
    assert torch.equal(stage1.tokenize(images), ids)
    assert tk.TokenizerSpec.from_json(spec.to_json()) == spec


def test_legacy_reshape_mixes_tokens_and_channels(images):
    """The legacy quirk: (N, W) token features are reinterpreted as (W, N) before the projection."""
    torch.manual_seed(0)
    enc = tk.build(tiny_legacy_spec(pixel_decoder=False)).encoder
    with torch.no_grad():
        legacy = enc(images)
        object.__setattr__(enc.config, "legacy_reshape", False)
        try:
            plain = enc(images)
        finally:
            object.__setattr__(enc.config, "legacy_reshape", True)
    assert not torch.allclose(legacy, plain)


def test_fused_inference_matches_plain_linear_arithmetic(images):
    """CPU float32 inference runs the ViT linear maps as fused oneDNN calls; nn.Linear arithmetic on request."""
    torch.manual_seed(0)
    tok = tk.build("titok-tiny")
    assert tok.encoder.backbone.fused_inference and tok.decoder.fused_inference
    ids, rec = tok.tokenize(images), tok.detokenize(tok.tokenize(images))
    tok.encoder.backbone.fused_inference = False
    tok.decoder.fused_inference = False
    assert not tok.decoder.backbone.fused_inference
    assert torch.equal(tok.tokenize(images), ids)
    torch.testing.assert_close(tok.detokenize(ids), rec, rtol=0, atol=1e-5)
    # with autograd the plain path runs whatever the flag says (the fused kernels have no backward)
    tok.decoder.fused_inference = True
    out = tok.decode(tok.encode(images).codes)
    out.mean().backward()
    assert tok.decoder.backbone.blocks[0].mlp.fc1.weight.grad is not None
