"""The text-to-image ``maskgen`` generator (MaskGen-VQ): official layouts, contract, text guidance, errors.

Exact parity with the official ``MaskGen_VQ`` (logits and sampled ids) is checked outside the test suite,
against the official code with random weights; here: the official key listings and parameter counts
(``tests/fixtures/official_keys/maskgen_vq_{l,xl}.txt``, ``maskgen_param_counts.json``) and the behaviour.
"""

from __future__ import annotations

import copy
import json
import math
import random

import pytest
import torch
from _helpers import KEYS_DIR, official_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokenkit as tk
from tokenkit.contracts import TextEmbeddings
from tokenkit.errors import ConfigError, ContractError
from tokenkit.generators.maskgen import MaskGenConfig, sinusoidal_encoding
from tokenkit.generators.sampling import TextSamplingConfig, guidance_at
from tokenkit.weights import official

SIZES = {"maskgen-vq-l": "maskgen_vq_l", "maskgen-vq-xl": "maskgen_vq_xl"}
PROMPTS = ["a red rocket", "a cat on a mat", "snow"]


def _own_parameters(gen) -> int:
    return sum(p.numel() for n, p in gen.named_parameters() if not n.startswith("text_encoder."))


def _meta(shapes):
    return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    gen = tk.build("maskgen-vq-tiny")
    with torch.no_grad():  # the official init zeroes the final adaptive norm: make every weight matter
        for name, p in gen.named_parameters():
            if not name.startswith("text_encoder."):
                p.add_(torch.randn_like(p) * 0.1)
    return gen.eval()


@pytest.fixture(scope="module")
def text(tiny):
    return tiny.encode_text(PROMPTS)


def _ids(gen, batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, gen.codebook_size + 1, (batch, gen.num_tokens), generator=generator)


# ---- official layouts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SIZES))
def test_official_key_coverage_and_parameter_counts(name):
    gen = tk.build(name, device="meta")
    counts = json.loads((KEYS_DIR / "maskgen_param_counts.json").read_text())[name]
    assert _own_parameters(gen) == counts["parameters"]
    listing = official_keys(SIZES[name])
    assert official.detect_layout(_meta(listing)) == "maskgen-vq"
    assert _shapes(official.to_tokenkit(_meta(listing))) == _shapes(gen.state_dict())  # every official key maps
    back = _shapes(official.MASKGEN_VQ.to_foreign(gen.state_dict()))
    tied = listing.pop("lm_head.weight")  # WeightTiedLMHead registers the embedding table a second time
    assert back == listing and tied == listing["embeddings.weight"]
    assert counts["state_dict_numel"] == counts["parameters"] + math.prod(tied)


def test_tied_and_untied_heads_convert_both_ways(tiny):
    foreign = official.MASKGEN_VQ.to_foreign(tiny.state_dict())
    as_saved = dict(foreign, **{"lm_head.weight": foreign["embeddings.weight"]})  # torch.save keeps both names
    only_head = {("lm_head.weight" if k == "embeddings.weight" else k): v for k, v in foreign.items()}
    for state in (foreign, as_saved, only_head):
        converted = official.to_tokenkit(state)
        assert converted.keys() == tiny.state_dict().keys()
        assert torch.equal(converted["token_embedding.weight"], tiny.token_embedding.weight)
    untied = tk.build("maskgen-vq-tiny", weight_tying=False)
    foreign = official.MASKGEN_VQ.to_foreign(untied.state_dict())
    assert foreign["lm_head.weight"].shape == (256, 32) and "lm_head.bias" in foreign
    assert official.to_tokenkit(foreign).keys() == untied.state_dict().keys()


def test_an_official_file_loads_and_gives_the_same_logits(tiny, text, tmp_path):
    foreign = official.MASKGEN_VQ.to_foreign(tiny.state_dict())
    foreign["lm_head.weight"] = foreign["embeddings.weight"]
    torch.save(foreign, tmp_path / "maskgen.bin")
    loaded = tk.build("maskgen-vq-tiny", pretrained=tmp_path / "maskgen.bin")
    ids = _ids(tiny)
    with torch.no_grad():
        assert torch.equal(loaded(ids, text), tiny(ids, text))


def test_save_and_load_round_trip(tiny, text, tmp_path):
    tk.save_pretrained(tiny, tmp_path)
    loaded = tk.from_pretrained(tmp_path)
    assert loaded.spec == tiny.spec and loaded.conditioning == "text"
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), loaded.state_dict().values()))
    assert not any(k.startswith("text_encoder.") for k in tiny.state_dict())  # external weights
    ids = _ids(tiny)
    with torch.no_grad():
        assert torch.equal(loaded(ids, loaded.encode_text(PROMPTS)), tiny(ids, text))


def test_reference_compositions_use_the_official_settings():
    config = tk.spec("maskgen-vq-xl").resolve()["generator"]
    assert config.text_encoder == tk.Part("openclip", model="ViT-L-14-336", weights="openai", quick_gelu=True)
    assert (config.backbone.config, config.codebook_size, config.num_tokens) == (
        {"width": 1280, "depth": 20, "heads": 16}, 8192, 128)
    s = config.sampling
    assert (s.guidance, s.temperature, s.steps, s.aesthetic, s.softmax_annealing, s.schedule, s.guidance_decay,
            s.guidance_pow) == (12.0, 2.0, 16, 6.5, True, "arccos", "cosine-ramp", 1.0)
    assert tk.registry.get_model("maskgen-vq-l").weights.repo_id == "turkeyju/generator_maskgen_vq_l"


# ---- forward -----------------------------------------------------------------------------------------------------
def test_forward_shapes_gradients_and_batch_independence(tiny, text):
    ids = _ids(tiny)
    gen = copy.deepcopy(tiny).train()
    logits = gen(ids, text, drop_text=torch.zeros(3, dtype=torch.bool))
    assert logits.shape == (3, 8, 256) and logits.dtype == torch.float32
    logits.square().mean().backward()
    assert all(p.grad is not None for n, p in gen.named_parameters() if not n.startswith("text_encoder."))
    assert not any(p.requires_grad for p in gen.text_encoder.parameters())
    double = copy.deepcopy(tiny).double()
    text64 = TextEmbeddings(*(t.double() for t in text))
    with torch.no_grad():
        full = double(ids, text64, aesthetic=torch.tensor([6.5, 3.0, 9.0]))
        for i, score in enumerate((6.5, 3.0, 9.0)):
            alone = double(ids[i : i + 1], text64.select(slice(i, i + 1)), aesthetic=score)
            assert torch.allclose(alone, full[i : i + 1], atol=1e-9)


def test_the_aesthetic_score_and_the_text_condition_the_logits(tiny, text):
    ids = _ids(tiny)
    with torch.no_grad():
        base = tiny(ids, text)
        assert torch.equal(base, tiny(ids, text, aesthetic=6.5))  # the default is sampling.aesthetic
        assert not torch.allclose(base, tiny(ids, text, aesthetic=3.0))
        other = tiny.encode_text(["an entirely different prompt"] * 3)
        assert not torch.allclose(base, tiny(ids, other))


def test_dropped_prompts_become_the_empty_prompt(tiny, text):
    ids = _ids(tiny)
    empty = tiny.encode_text([""] * 3)
    drop = torch.tensor([True, False, True])
    with torch.no_grad():
        dropped = tiny(ids, text, drop_text=drop)
        assert torch.allclose(dropped[drop], tiny(ids, empty)[drop], atol=1e-6)
        assert torch.allclose(dropped[~drop], tiny(ids, text)[~drop], atol=1e-6)
        gen = copy.deepcopy(tiny).train()
        gen.config = MaskGenConfig(**{**tiny.config.__dict__, "text_dropout": 1.0})
        assert torch.allclose(gen(ids, text), tiny(ids, empty), atol=1e-6)  # training draws (dropout off here)


def test_sinusoidal_encoding_of_the_aesthetic_score():
    values = torch.tensor([0.0, 650.0])
    enc = sinusoidal_encoding(values, 6)
    freqs = [1000 ** (-j / 3) for j in range(3)]
    expected = [[math.sin(v * f) for f in freqs] + [math.cos(v * f) for f in freqs] for v in (0.0, 650.0)]
    assert torch.allclose(enc, torch.tensor(expected), atol=1e-4)
    assert sinusoidal_encoding(values, 7)[:, -1].abs().sum() == 0  # odd width: zero padded


# ---- sampling ----------------------------------------------------------------------------------------------------
def test_text_guidance_runs_one_batched_pass_per_step(tiny, text):
    batches = []
    handle = tiny.backbone.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    try:
        tiny.generate(text, steps=4, guidance=3.0)
        assert batches == [6] * 4
        batches.clear()
        tiny.generate(PROMPTS, steps=4, guidance=0.0)
        assert batches == [3] * 4
    finally:
        handle.remove()


def test_temperature_zero_is_deterministic_and_seeded_sampling_reproducible(tiny):
    a = tiny.generate(PROMPTS, temperature=0.0, generator=torch.Generator().manual_seed(0))
    b = tiny.generate(PROMPTS, temperature=0.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == (3, 8) and a.dtype == torch.int64
    c = tiny.generate(PROMPTS, steps=6, temperature=5.0, generator=torch.Generator().manual_seed(2))
    d = tiny.generate(PROMPTS, steps=6, temperature=5.0, generator=torch.Generator().manual_seed(2))
    assert torch.equal(c, d) and int(c.min()) >= 0 and int(c.max()) < 256
    draws = []
    tiny.generate("one prompt", steps=2, noise=lambda shape: draws.append(shape) or torch.rand(shape))
    assert draws == [(1, 8, 256), (1, 8)] * 2


def test_generate_with_embeddings_and_no_text_encoder(tiny, text):
    bare = tk.build("maskgen-vq-tiny", text_encoder=False)
    tk.load_weights(bare, tiny.state_dict())
    null_text = tiny.encode_text("")
    assert torch.equal(bare.generate(text, null_text=null_text, temperature=0.0), tiny.generate(text, temperature=0.0))
    assert bare.generate(text, guidance=0.0).shape == (3, 8)
    with pytest.raises(ContractError, match="built without a text encoder: give TextEmbeddings"):
        bare.generate(PROMPTS)
    with pytest.raises(ContractError, match=r"so guidance needs the empty-prompt embeddings: pass null_text="):
        bare.generate(text)
    with pytest.raises(ContractError, match="so drop_text needs the empty-prompt embeddings"):
        bare(_ids(bare), text, drop_text=torch.tensor([True, False, False]))
    with pytest.raises(ContractError, match="training with text_dropout > 0 needs"):
        bare.train()(_ids(bare), text)


def test_cosine_ramp_guidance_and_the_text_sampling_defaults():
    config = TextSamplingConfig()
    expected = [(12.0 - 1) * (1 - math.cos(math.pi * (s + 1) / 16)) / 2 + 1 for s in range(16)]
    assert all(abs(guidance_at(config, s) - e) < 1e-5 for s, e in enumerate(expected))
    assert guidance_at(config, 15) == 12.0
    assert guidance_at(TextSamplingConfig(guidance=0.0), 3) == 0.0  # 0 disables guidance
    with pytest.raises(ConfigError, match="aesthetic must be a finite number"):
        TextSamplingConfig(aesthetic=float("nan"))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_random_tiny_configs_keep_the_contract(rng: random.Random):
    config = MaskGenConfig.tiny(rng)
    torch.manual_seed(0)
    gen = tk.build(tk.GeneratorSpec(generator=tk.Part("maskgen", **{
        f: getattr(config, f) for f in config.__dataclass_fields__}))).eval()
    batch = rng.randint(1, 3)
    prompts = [rng.choice(["a", "a dog", "", "two red cubes"]) for _ in range(batch)]
    text = gen.encode_text(prompts)
    logits = gen(_ids(gen, batch), text)
    assert logits.shape == (batch, config.num_tokens, config.codebook_size) and torch.isfinite(logits).all()
    ids = gen.generate(prompts, generator=torch.Generator().manual_seed(0))
    again = gen.generate(prompts, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, again) and ids.shape == (batch, config.num_tokens)
    assert int(ids.min()) >= 0 and int(ids.max()) < config.codebook_size


# ---- errors ------------------------------------------------------------------------------------------------------
def test_bad_input_is_named(tiny, text):
    ids = _ids(tiny)
    with pytest.raises(ContractError, match="prompts must be a string or a list of strings, got int"):
        tiny.generate(3)
    with pytest.raises(ContractError, match="prompts must be strings; item 1 is int"):
        tiny.generate(["a", 1])
    with pytest.raises(ContractError, match="prompts is empty"):
        tiny.generate([])
    with pytest.raises(ContractError, match=r"text.hidden must be float of shape \(3, L, 16\), got .* \(2, 16, 16\)"):
        tiny(ids, text.select(slice(0, 2)))
    with pytest.raises(ContractError, match=r"text.pooled must be float of shape \(3, 16\).*squeeze"):
        tiny(ids, TextEmbeddings(text.tokens, text.hidden, text.pooled[:, None]))
    with pytest.raises(ContractError, match=r"text.hidden must be float of shape \(3, L, 16\)"):
        tiny(ids, TextEmbeddings(text.tokens, text.hidden[..., :8], text.pooled))
    with pytest.raises(ContractError, match="text must be TextEmbeddings"):
        tiny(ids, (text.hidden, text.pooled))
    with pytest.raises(ContractError, match=r"null_text.hidden must be float of shape \(1 or 3, L, 16\)"):
        tiny.generate(text, null_text=text.select(slice(0, 2)))
    with pytest.raises(ContractError, match="null_text.hidden has 4 tokens per prompt, text.hidden 16"):
        tiny.generate(text, null_text=TextEmbeddings(*(t[:1, :4] if t.ndim == 3 else t[:1] for t in text)))
    with pytest.raises(ContractError, match=r"indices must lie in \[0, 256\]"):
        tiny(ids + 257, text)
    with pytest.raises(ContractError, match=r"indices must be integer ids of shape \(B, 8\)"):
        tiny(ids.float(), text)
    with pytest.raises(ContractError, match=r"drop_text must be bool of shape \(3,\)"):
        tiny(ids, text, drop_text=torch.zeros(3))
    with pytest.raises(ContractError, match=r"aesthetic must be a number or real scores of shape \(3,\)"):
        tiny(ids, text, aesthetic=torch.ones(2))
    with pytest.raises(ContractError, match="sampling options of MaskGen are"):
        tiny.generate(PROMPTS, temprature=1.0)
    with pytest.raises(ConfigError, match="its text encoder gives widths 16 .* but text_dim=8"):
        tk.build("maskgen-vq-tiny", text_dim=8)
    with pytest.raises(ConfigError, match="guidance_decay must be one of"):
        tk.build("maskgen-vq-tiny", guidance_decay="cosine")
