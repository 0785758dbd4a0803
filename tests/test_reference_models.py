"""Named compositions: exact official parameter counts (built on the meta device) and tiny forwards."""

import pytest
import torch

import tokenkit as tk

OFFICIAL_COUNTS = {
    "titok-l32": 641_054_735,
    "titok-b64": 204_814_095,
    "titok-s128": 83_674_639,
    "titok-bl64-vq8k": 390_016_148,
    "titok-bl128-vq8k": 390_179_988,
    "titok-sl256-vq8k": 330_260_884,
    "titok-ll32-vae": 606_879_604,
    "titok-bl64-vae": 389_418_100,
    "titok-bl128-vae": 389_581_940,
    "maskgit-vqgan": 54_515_587,
    "maskgit-titok-l32": 177_202_432,
    "maskgit-titok-b64": 177_227_008,
    "maskgit-titok-s128": 294_990_848,
}

# per-part counts (latent_tokens, encoder, decoder, quantize, pixel_quantize + pixel_decoder) measured by
# instantiating the official TiTok (modeling/titok.py L76-134); latent_tokens live in tokenkit's encoder
OFFICIAL_PARTS = {
    "titok-l32": (32_768 + 303_410_188, 306_822_144, 49_152, 262_144 + 30_478_339),
    "titok-s128": (65_536 + 25_818_636, 27_000_832, 49_152, 262_144 + 30_478_339),
    "titok-bl64-vq8k": (49_152 + 85_944_640, 303_498_068, 524_288, 0),
    "titok-ll32-vae": (32_768 + 303_430_688, 303_416_148, 0, 0),
}


def _count(module):
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def test_every_reference_model_is_listed():
    assert set(OFFICIAL_COUNTS) <= set(tk.list_models())


@pytest.mark.parametrize("name", tk.list_models())
def test_builds_on_meta_with_official_parameter_count(name):
    tok = tk.build(name, device="meta")
    assert not tok.training
    if name in OFFICIAL_COUNTS:
        assert _count(tok) == OFFICIAL_COUNTS[name]


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARTS))
def test_parameter_count_per_part(name):
    tok = tk.build(name, device="meta")
    counts = (_count(tok.encoder), _count(tok.decoder), _count(tok.quantizer), _count(tok.pixel_decoder))
    assert counts == OFFICIAL_PARTS[name]


def test_stage1_legacy_model_drops_the_pixel_decoder():
    tok = tk.build("titok-s128", pixel_decoder=False, device="meta")
    assert tok.pixel_decoder is None
    assert _count(tok) == 83_674_639 - 262_144 - 30_478_339


@pytest.mark.parametrize("name", tk.list_models("titok-*"))
def test_every_quantizer_swaps_into_every_composition(name):
    """Each registered quantizer (tiny config) drops into each TiTok composition: at full size on the
    meta device, and at tiny size with a real forward pass (driven by the registry)."""
    from _helpers import tiny_spec

    from tokenkit.testing import tiny_part

    base, tiny = tk.spec(name), tiny_spec(name)
    images = torch.rand(2, 3, 32, 32)
    for qname in tk.list_parts("quantizer"):
        part = tiny_part("quantizer", qname)
        assert tk.build(base.replace(quantizer=part), device="meta").quantizer.part_name == qname
        tok = tk.build(tiny.replace(quantizer=part)).train()
        out = tok(images)
        assert out.images.shape == images.shape and torch.isfinite(out.images).all(), qname
        assert out.loss.ndim == 0 and torch.isfinite(out.loss), qname
