import json

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import ConfigError


def test_part_is_immutable_data():
    part = tk.Part("vq", codebook_size=16, dim=4)
    assert part == tk.Part.from_dict(json.loads(json.dumps(part.to_dict())))
    assert hash(part) == hash(tk.Part("vq", dim=4, codebook_size=16))
    with pytest.raises(TypeError):
        part.config["dim"] = 8
    assert part.with_options(dim=8).config["dim"] == 8 and part.config["dim"] == 4


@pytest.mark.parametrize("name", tk.list_models())
def test_spec_json_round_trip(name):
    spec = tk.spec(name)
    again = type(spec).from_json(spec.to_json())
    assert again == spec
    assert again.to_dict() == json.loads(spec.to_json())


def test_round_trip_rebuilds_identical_outputs():
    spec = tk.spec("titok-tiny")
    tok = tk.build(spec)
    clone = tk.build(tk.TokenizerSpec.from_json(spec.to_json()))
    clone.load_state_dict(tok.state_dict(), strict=True)
    images = torch.rand(2, 3, 32, 32)
    a, b = tok(images), clone(images)
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.images, b.images)


def test_swapping_the_bottleneck_resolves_dimensions():
    spec = tk.spec("titok-bl64-vq8k").replace(quantizer=tk.Part("gaussian", channels=16))
    configs = spec.resolve()
    assert configs["encoder"].out_dim == 32 and configs["decoder"].in_dim == 16
    tok = tk.build(spec, device="meta")
    assert sum(p.numel() for p in tok.parameters()) == 389_418_100  # == titok-bl64-vae


def test_knobs_change_the_composition():
    tok = tk.build("titok-b64", num_tokens=128, image_size=512, encoder_size="large", device="meta")
    assert tok.num_tokens == 128 and tok.image_size == 512
    assert tok.encoder.width == 1024 and tok.decoder.width == 768
    assert tok.encoder.positional_embedding.shape == (32 * 32 + 1, 1024)


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        (dict(encoder_size="huge"), "unknown encoder_size 'huge'"),
        (dict(image_size=250), "not divisible by patch_size"),
        (dict(num_tokens=0), "num_tokens must be a positive int"),
        (dict(codebook_size=1024), "does not apply to the continuous"),
        (dict(tokens=3), "has no knob"),
        (dict(pixel_decoder=True), "needs legacy=True"),
    ],
)
def test_bad_knobs_raise_before_building(knobs, message):
    name = "titok-bl64-vae"
    with pytest.raises(ConfigError, match=message):
        tk.spec(name, **knobs)


def test_legacy_pixel_decoder_needs_patch_16_and_the_error_names_the_remedy():
    with pytest.raises(ConfigError, match=r"patch_size=8 .* upsamples by 16\. Use legacy=False"):
        tk.spec("titok-s128", patch_size=8)
    assert tk.spec("titok-s128", patch_size=8, legacy=False).pixel_decoder is None
    with pytest.raises(ConfigError, match="upsampling factor"):  # a pixel decoder given as a Part: checked by the spec
        tk.spec("titok-s128", patch_size=8, pixel_decoder=tk.Part("vqgan", codebook_size=1024))


def test_explicit_dimensions_must_agree():
    spec = tk.spec("titok-tiny")
    with pytest.raises(ConfigError, match="latent width mismatch"):
        spec.replace(encoder=spec.encoder.with_options(out_dim=5))
    with pytest.raises(ConfigError, match="num_tokens mismatch"):
        spec.replace(decoder=spec.decoder.with_options(num_tokens=9))
    with pytest.raises(ConfigError, match="has no option"):
        spec.replace(quantizer=tk.Part("vq", size=3))
    with pytest.raises(ConfigError, match="no quantizer named 'fsqq'"):
        spec.replace(quantizer=tk.Part("fsqq"))
    with pytest.raises(ConfigError, match="invalid options for quantizer 'vq'"):
        spec.replace(quantizer=tk.Part("vq", codebook_size=0))


def test_spec_json_errors_are_clear():
    with pytest.raises(ConfigError, match="not valid JSON"):
        tk.TokenizerSpec.from_json("{")
    with pytest.raises(ConfigError, match="not a tokenkit TokenizerSpec"):
        tk.TokenizerSpec.from_json("{}")
    data = tk.spec("titok-tiny").to_dict()
    data["version"] = 99
    with pytest.raises(ConfigError, match="unsupported spec version"):
        tk.TokenizerSpec.from_dict(data)
    with pytest.raises(ConfigError, match="knobs"):
        tk.build(tk.spec("titok-tiny"), num_tokens=4)


def test_specs_pickle_and_copy():
    import copy
    import pickle

    spec = tk.spec("titok-s128")
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert copy.deepcopy(spec) == spec
    tok = tk.build("titok-tiny")
    assert copy.deepcopy(tok).spec == tok.spec


def test_changing_the_quantizer_drops_the_models_quantizer_options():
    assert tk.spec("titok-tiny", quantizer="gaussian").quantizer == tk.Part("gaussian", channels=16)
    assert tk.spec("titok-tiny", quantizer="gaussian", token_dim=4).quantizer == tk.Part("gaussian", channels=4)
    assert tk.spec("titok-tiny", quantizer="vq").quantizer.config["codebook_size"] == 256  # unchanged: kept
    assert tk.spec("titok-l32", codebook_size=1024).quantizer.config["l2_norm"] is True
    with pytest.raises(tk.ConfigError, match="quantizer='fsq' takes its options from a Part"):
        tk.spec("titok-tiny", quantizer="fsq", codebook_size=5)
