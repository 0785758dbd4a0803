"""TA-TiTok: the text-aware decoder, the text encoder part, the reference compositions and their official layout."""

from __future__ import annotations

import pytest
import torch
from _helpers import official_keys
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenkit as tk
from tokenkit.contracts import TextEmbeddings
from tokenkit.errors import ConfigError, ContractError, WeightsError
from tokenkit.models.official_config import spec_from_official_config
from tokenkit.text_encoders.openclip import TINY as TINY_TEXT
from tokenkit.weights import official

OFFICIAL_COUNTS = {  # parameters of the official TATiTok built from configs/infer/TA-TiTok/*.yaml (no CLIP)
    "tatitok-bl32-vq": 390_800_532, "tatitok-bl64-vq": 390_882_452, "tatitok-bl128-vq": 391_046_292,
    "tatitok-bl32-vae": 390_202_484, "tatitok-bl64-vae": 390_284_404, "tatitok-sl128-vae": 330_275_188,
}
PROMPTS = ["a photo of a jay", "a red rocket on a launch pad", "a cup of coffee"]


def _shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return tk.build("tatitok-tiny")


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


# ---- reference compositions ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(OFFICIAL_COUNTS))
def test_reference_layout_and_parameter_count_match_the_official_checkpoint(name):
    model = tk.build(name, device="meta")
    listing = official_keys(name.replace("-", "_"))
    assert _shapes(official.TITOK.to_foreign(model.state_dict())) == listing
    own = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("text_encoder."))
    assert own == OFFICIAL_COUNTS[name] == sum(torch.Size(s).numel() for s in listing.values())
    assert model.text_encoder.config.weights == "openai" and model.decoder.text_dim == 768


def test_the_training_checkpoint_with_clustering_statistics_loads():
    """The TA-TiTok training configs add ``quantize.embed_prob`` (clustering VQ): a harmless extra."""
    listing = official_keys("tatitok_bl64_vq_trainconfig_clusteringvq")
    assert set(listing) - set(official_keys("tatitok_bl64_vq")) == {"quantize.embed_prob"}
    assert "quantize.embed_prob" in official.IGNORED_KEYS


def test_official_layout_is_detected_and_its_config_gives_the_composition(tok):
    foreign = official.TITOK.to_foreign(tok.state_dict())
    assert official.detect_layout(foreign) == "tatitok"
    config = {"model": {"vq_model": {"quantize_mode": "vq", "codebook_size": 8192, "token_size": 64,
                                     "use_l2_norm": False, "commitment_cost": 0.25, "clustering_vq": False,
                                     "vit_enc_model_size": "base", "vit_dec_model_size": "large",
                                     "vit_enc_patch_size": 16, "vit_dec_patch_size": 16, "num_latent_tokens": 32,
                                     "finetune_decoder": False, "is_legacy": False}}}
    assert spec_from_official_config(config, text_aware=True) == tk.spec("tatitok-bl32-vq")
    assert spec_from_official_config(config).text_encoder is None  # plain TiTok
    config["model"]["vq_model"]["text_embed_dim"] = 512
    with pytest.raises(WeightsError, match="text_embed_dim 768"):
        spec_from_official_config(config, text_aware=True)


def test_any_titok_becomes_text_aware_by_a_knob():
    spec = tk.spec("titok-bl64-vq8k", text_encoder=TINY_TEXT)
    assert spec.decoder.config["text_dim"] == 16 and spec.decoder.config["text_length"] == 16
    assert spec.encoder == tk.spec("titok-bl64-vq8k").encoder  # tokenize is unchanged
    with pytest.raises(ConfigError, match="takes no text"):
        tk.spec("titok-tiny").replace(text_encoder=TINY_TEXT)
    with pytest.raises(ConfigError, match="text width mismatch"):
        tk.spec("tatitok-tiny").replace(text_encoder=TINY_TEXT.with_options(width=32))


# ---- the text API ----------------------------------------------------------------------------------------------
def test_prompts_and_their_embeddings_decode_alike_in_chunks_too(tok, images):
    ids = tok.tokenize(images)
    by_prompt = tok.detokenize(ids, text=PROMPTS)
    embeddings = tok.encode_text(PROMPTS)
    assert isinstance(embeddings, TextEmbeddings)
    torch.testing.assert_close(tok.detokenize(ids, text=embeddings), by_prompt, rtol=0, atol=1e-6)
    torch.testing.assert_close(tok.detokenize(ids, text=embeddings.tokens, batch_size=2), by_prompt, rtol=0,
                               atol=1e-6)
    one = tok.detokenize(ids, text=PROMPTS[0])  # one prompt for every image
    torch.testing.assert_close(one[0], by_prompt[0], rtol=0, atol=1e-6)
    assert not torch.allclose(one[1], by_prompt[1])  # the text changes the image
    out = tok(images, text=PROMPTS)
    torch.testing.assert_close(out.images.clamp(0, 1), by_prompt, rtol=0, atol=1e-5)


@settings(max_examples=8, deadline=None)
@given(batch=st.integers(1, 4), chunk=st.integers(1, 4), words=st.lists(st.text("abcxyz ", max_size=12),
                                                                       min_size=4, max_size=4))
def test_decode_contract(tok, batch, chunk, words):
    """Any batch and chunk size: images of the right shape in [0, 1], the same with and without chunks."""
    ids = torch.randint(0, tok.codebook_size, (batch, tok.num_tokens), generator=torch.Generator().manual_seed(batch))
    prompts = words[:batch]
    whole = tok.detokenize(ids, text=prompts)
    assert whole.shape == (batch, 3, 32, 32) and 0 <= whole.min() and whole.max() <= 1
    torch.testing.assert_close(tok.detokenize(ids, text=prompts, batch_size=chunk), whole, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [(None, "is text-aware: pass text="), (3, "got int"), (["a", 2, "c"], "item 1 is int"),
     (["a", "b"], "2 prompts for 3 images"), ([], "empty"), (torch.zeros(3, 5, 16), r"shape \(3, 16, 16\)"),
     (torch.zeros(2, 16, 16), "embeddings for 2 images, codes for 3")],
)
def test_bad_text_is_refused_with_a_clear_message(tok, text, message):
    ids = torch.zeros(3, tok.num_tokens, dtype=torch.long)
    with pytest.raises(ContractError, match=message):
        tok.detokenize(ids, text=text)


def test_text_given_to_a_decoder_that_takes_none_is_refused():
    plain = tk.build("titok-tiny")
    with pytest.raises(ContractError, match="takes no text"):
        plain.detokenize(torch.zeros(1, 8, dtype=torch.long), text="a cat")
    with pytest.raises(ContractError, match="takes no text"):
        plain.decoder(torch.zeros(1, 8, 8), torch.zeros(1, 77, 768))


def test_a_text_aware_decoder_without_text_encoder_names_the_missing_part(tok, images):
    bare = tk.build(tk.spec("tatitok-tiny").replace(text_encoder=None))
    bare.load_state_dict(tok.state_dict())
    ids = bare.tokenize(images)
    with pytest.raises(ContractError, match="no text_encoder part"):
        bare.detokenize(ids, text=PROMPTS)
    torch.testing.assert_close(bare.detokenize(ids, text=tok.encode_text(PROMPTS)),
                               tok.detokenize(ids, text=PROMPTS), rtol=0, atol=1e-6)


# ---- weights ---------------------------------------------------------------------------------------------------
def test_save_load_round_trip_leaves_the_text_encoder_out(tok, images, tmp_path):
    tk.save_pretrained(tok, tmp_path)
    loaded = tk.from_pretrained(tmp_path)
    assert loaded.spec == tok.spec
    assert not any(k.startswith("text_encoder.") for k in tok.state_dict())
    ids = tok.tokenize(images)
    torch.testing.assert_close(loaded.detokenize(ids, text=PROMPTS), tok.detokenize(ids, text=PROMPTS), rtol=0,
                               atol=1e-6)


def test_an_official_file_loads_by_inference(tok, images, tmp_path):
    path = tmp_path / "tatitok_tiny.bin"
    torch.save({**official.TITOK.to_foreign(tok.state_dict()), "quantize.embed_prob": torch.ones(3)}, path)
    loaded = tk.from_pretrained(path)
    assert loaded.spec == tok.spec
    torch.testing.assert_close(loaded.detokenize(loaded.tokenize(images), text=PROMPTS),
                               tok.detokenize(tok.tokenize(images), text=PROMPTS), rtol=0, atol=1e-6)


def test_text_encoder_weights_from_a_local_file(tmp_path):
    source = tk.build_part("text_encoder", TINY_TEXT.with_options(seed=3))
    path = tmp_path / "clip.safetensors"
    from safetensors.torch import save_file

    save_file({"visual.proj": torch.zeros(2), **{k: v.contiguous() for k, v in source.tower.state_dict().items()}},
              path)
    loaded = tk.build_part("text_encoder", TINY_TEXT.with_options(weights=str(path)))
    assert torch.equal(loaded(PROMPTS).pooled, source(PROMPTS).pooled)
    assert not torch.equal(tk.build_part("text_encoder", TINY_TEXT)(PROMPTS).pooled, source(PROMPTS).pooled)
    with pytest.raises(WeightsError, match="does not fit"):
        tk.build_part("text_encoder", TINY_TEXT.with_options(weights=str(path), width=32))


def test_text_encoder_tags_and_offline_errors(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a pretrained tag"):
        tk.build_part("text_encoder", tk.Part("openclip", weights="no-such-tag"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(WeightsError, match="text encoder 'openclip'.*open_clip_model.safetensors"):
        tk.build_part("text_encoder", tk.Part("openclip", weights="openai", width=16, heads=2, layers=2))


def test_text_encoder_is_frozen_and_stays_in_eval_mode(tok):
    tok.train()
    assert not tok.text_encoder.training and tok.decoder.training
    assert not any(p.requires_grad for p in tok.text_encoder.parameters())
    tok.eval()


def test_the_empty_prompt_is_embedded_once_per_dtype():
    text = tk.build_part("text_encoder", TINY_TEXT)
    first = text.empty_prompt()
    assert text.empty_prompt() is first
    assert torch.equal(first.pooled, text([""]).pooled)
    with torch.inference_mode():
        assert text.double().empty_prompt().pooled.dtype == torch.float64
    assert text.float().empty_prompt() is first  # nothing cached under inference mode
