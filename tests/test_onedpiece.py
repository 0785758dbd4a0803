"""One-D-Piece (arXiv 2501.10064) as reference compositions: the released layouts, parameter counts, the
converter, and prefix decoding by truncation (the tail-drop part with ``fill="truncate"``)."""

from __future__ import annotations

import math

import pytest
import torch
from _helpers import official_keys, tiny_spec

import tokenkit as tk
from tokenkit.pretrained import infer_spec
from tokenkit.weights import official

LISTINGS = {"onedpiece-l256": "onedpiece_l256", "onedpiece-b256": "onedpiece_b256", "onedpiece-s256": "onedpiece_s256"}
"""Model -> key listing of ``OneDPiece(configs/one-d-piece_{l,b,s}256.yaml)`` (turingmotors/One-D-Piece)."""

OFFICIAL_COUNTS = {"onedpiece-l256": 641_742_863, "onedpiece-b256": 205_256_463, "onedpiece-s256": 83_871_247}
"""Parameters of the official ``OneDPiece`` built from those configs (``finetune_decoder: True``)."""

TITOK_OF_THE_SAME_SIZE = {"onedpiece-l256": "titok-l32", "onedpiece-b256": "titok-b64", "onedpiece-s256": "titok-s128"}


def _shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _count(module):
    return sum(p.numel() for p in module.parameters())


# ---- full sizes, on the meta device ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_official_key_coverage(name):
    """tokenkit's parameters map one to one onto the One-D-Piece checkpoint keys and shapes."""
    tok = tk.build(name, device="meta")
    assert _shapes(official.TITOK.to_foreign(tok.state_dict())) == official_keys(LISTINGS[name])


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_official_parameter_count(name):
    tok = tk.build(name, device="meta")
    assert _count(tok) == OFFICIAL_COUNTS[name]
    assert sum(math.prod(shape) for shape in official_keys(LISTINGS[name]).values()) == OFFICIAL_COUNTS[name]
    # the tail drop adds no parameter: the legacy TiTok of the same size with 256 tokens
    assert _count(tok) == _count(tk.build(TITOK_OF_THE_SAME_SIZE[name], num_tokens=256, device="meta"))


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_the_composition(name):
    spec = tk.spec(name)
    configs = spec.resolve()
    assert configs["encoder"].num_tokens == 256 and configs["encoder"].legacy_reshape
    assert configs["decoder"].head == "proxy" and spec.pixel_decoder.name == "vqgan"
    assert spec.quantizer.name == "tail-drop" and spec.quantizer.config["fill"] == "truncate"
    assert spec.quantizer.config["quantizer"] == tk.Part("vq", codebook_size=4096, dim=12, l2_norm=True,
                                                         commitment_cost=0.25)
    tok = tk.build(name, device="meta")
    assert tok.supports_prefix and tok.codebook_size == 4096 and tok.num_tokens == 256


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_their_keys_name_the_composition(name):
    """A state dict with One-D-Piece's keys fits this composition and no other (``from_pretrained`` on a bare file)."""
    foreign = official.TITOK.to_foreign(tk.build(name, device="meta").state_dict())
    assert official.detect_layout(foreign) == "titok"
    assert infer_spec(official.to_tokenkit(foreign)) == tk.spec(name)


# ---- tiny size, real forwards ------------------------------------------------------------------------------------
def _tiny(name="onedpiece-s256"):
    torch.manual_seed(0)
    return tk.build(tiny_spec(name).replace(quantizer=tk.spec(name).quantizer)).eval()


def _images(tok, batch=2):
    return torch.rand(batch, 3, tok.image_size, tok.image_size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(LISTINGS))
def test_converter_round_trip(name, tmp_path):
    """tokenkit -> One-D-Piece layout -> tokenkit is exact; a file in their layout loads with equal outputs."""
    tok = _tiny(name)
    foreign = official.TITOK.to_foreign(tok.state_dict())
    assert "quantize.embedding.weight" in foreign and not any(k.startswith("quantizer.") for k in foreign)
    back = official.to_tokenkit(foreign)
    assert back.keys() == tok.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in tok.state_dict().items())
    path = tmp_path / "pytorch_model.bin"
    torch.save(foreign, path)
    loaded = tk.build(tok.spec, pretrained=path)
    images = _images(tok)
    ids = tok.tokenize(images)
    assert torch.equal(loaded.tokenize(images), ids)
    for k in (1, 2, tok.num_tokens):
        assert torch.equal(loaded.detokenize(ids[:, :k]), tok.detokenize(ids[:, :k]))


def test_a_prefix_is_decoded_by_truncation():
    """The decoder reads the first k tokens only (no mask code stands for the tail), as ``OneDPiece.decode``."""
    tok = _tiny()
    images = _images(tok)
    ids = tok.tokenize(images)
    assert ids.shape == (2, tok.num_tokens)
    seen = []
    hook = tok.decoder.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    try:
        for k in (1, 3, tok.num_tokens):
            rec = tok.detokenize(ids[:, :k])
            assert rec.shape == images.shape and 0 <= rec.min() and rec.max() <= 1
            with torch.no_grad():
                direct = tok.pixel_decoder(tok.decoder(tok.quantizer.lookup(ids[:, :k])))
            torch.testing.assert_close(tok.decode(tok.quantizer.lookup(ids[:, :k])), direct, rtol=0, atol=1e-5)
    finally:
        hook.remove()
    assert seen == [k for k in (1, 3, tok.num_tokens) for _ in range(3)]  # detokenize, direct, decode
    assert torch.equal(tok.detokenize(ids), tok.detokenize(ids[:, : tok.num_tokens]))
    assert not torch.equal(tok.detokenize(ids[:, :1]), tok.detokenize(ids))
    with pytest.raises(tk.ContractError):
        tok.detokenize(ids[:, :0])


def test_the_tail_drop_has_no_parameter_and_keeps_the_vq_keys(tmp_path):
    tok = _tiny()
    assert tok.quantizer.mask_code is None
    assert [k for k in tok.state_dict() if k.startswith("quantizer.")] == ["quantizer.embedding.weight"]
    assert [n for n, _ in tok.quantizer.named_parameters()] == ["quantizer.embedding.weight"]
    tok.save_pretrained(tmp_path)  # tokenkit's own files keep the same keys
    again = tk.from_pretrained(tmp_path)
    assert again.spec == tok.spec
    assert torch.equal(again.quantizer.quantizer.embedding.weight, tok.quantizer.quantizer.embedding.weight)


@pytest.mark.parametrize("inner", [tk.Part("vq", codebook_size=64, dim=8), tk.Part("fsq", levels=(4, 4)),
                                   tk.Part("gaussian", channels=4)], ids=lambda part: part.name)
def test_truncating_tail_drop_has_the_plain_quantizers_layout(inner, tmp_path):
    """Around any quantizer: the state dict is the plain quantizer's model's, key for key, both ways."""
    torch.manual_seed(0)
    plain = tk.build(tk.spec("titok-tiny").replace(quantizer=inner))
    tok = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop", fill="truncate", quantizer=inner)))
    assert _shapes(tok.state_dict()) == _shapes(plain.state_dict())
    tk.load_weights(tok, plain.state_dict())
    images = _images(tok)
    assert torch.equal(tok(images).images, plain(images).images)  # eval: no drop
    tok.save_pretrained(tmp_path)
    again = tk.from_pretrained(tmp_path)
    codes = tok.encode(images).codes.detach()
    assert torch.equal(again.decode(codes[:, :3]), tok.decode(codes[:, :3]))


def test_training_truncates_one_prefix_per_batch():
    """In training each batch keeps its first k tokens, k uniform in [1, N] (``apply_tail_token_drop``)."""
    tok = _tiny().train()
    quantizer = tok.quantizer
    latents = torch.randn(3, tok.num_tokens, quantizer.config.in_dim)
    full = quantizer.eval()(latents)
    quantizer.train()
    kept = set()
    for _ in range(40):
        out = quantizer(latents)
        k = out.codes.shape[1]
        kept.add(k)
        assert 1 <= k <= tok.num_tokens and out.stats["kept_tokens"] == k
        assert torch.equal(out.codes, full.codes[:, :k]) and torch.equal(out.indices, full.indices)
    assert kept == set(range(1, tok.num_tokens + 1))
    out = tok(_images(tok))  # the whole model trains on the truncated codes
    assert out.images.shape == (2, 3, tok.image_size, tok.image_size) and torch.isfinite(out.loss)
    out.images.square().mean().backward()
    assert tok.encoder.proj.weight.grad is not None
    quantizer.train(False)


def test_fill_is_checked():
    with pytest.raises(tk.ConfigError, match="fill must be 'mask' or 'truncate'"):
        tk.spec("onedpiece-s256", quantizer=tk.Part("tail-drop", fill="zeros")).resolve()


def test_a_one_d_piece_config_reads_as_its_composition():
    """One-D-Piece's own config.json (``model.type: one_d_piece``) names the tail-drop composition, not the
    plain TiTok of the same size (whose prefixes would not decode)."""
    from tokenkit.models.official_config import spec_from_official_config

    tree = {"model": {"type": "one_d_piece", "vq_model": {
        "codebook_size": 4096, "token_size": 12, "use_l2_norm": True, "commitment_cost": 0.25,
        "vit_enc_model_size": "small", "vit_dec_model_size": "small", "vit_enc_patch_size": 16,
        "vit_dec_patch_size": 16, "num_latent_tokens": 256, "finetune_decoder": True}},
        "dataset": {"preprocessing": {"crop_size": 256}}}
    assert spec_from_official_config(tree).to_json() == tk.spec("onedpiece-s256").to_json()
    del tree["model"]["type"]
    assert spec_from_official_config(tree).quantizer.name == "vq"
