"""The autoregressive ``ar`` generator (RAR): official layouts, KV-cache decoding, orders, sampling, errors."""

from __future__ import annotations

import json

import pytest
import torch
from _helpers import KEYS_DIR, official_keys

import tokenkit as tk
from tokenkit.errors import ConfigError, ContractError
from tokenkit.generators.ar_sampling import ARSamplingConfig, draw_token, filter_logits, guidance_at
from tokenkit.weights import official

SIZES = {"rar-b": "rar_b", "rar-l": "rar_l", "rar-xl": "rar_xl", "rar-xxl": "rar_xxl"}


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


def _lively(gen):
    """Random weights everywhere, the adaLN-Zero layers included (else every block is the identity)."""
    torch.manual_seed(0)
    with torch.no_grad():
        for name, param in gen.named_parameters():
            if "modulation" in name or name.endswith("_embedding"):
                param.normal_(0, 0.1)
    return gen.eval()


@pytest.fixture
def tiny():
    return _lively(tk.build("rar-tiny"))


# ---- official layouts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SIZES))
def test_official_key_coverage_and_parameter_counts(name):
    gen = tk.build(name, device="meta")
    assert _shapes(official.RAR.to_foreign(gen.state_dict())) == official_keys(SIZES[name])
    counts = json.loads((KEYS_DIR / "rar_param_counts.json").read_text())
    assert sum(p.numel() for p in gen.parameters()) == counts[name]["parameters"]


def test_converter_round_trip_and_layout_detection():
    gen = tk.build("rar-b", width=32, depth=2, heads=2, mlp_dim=64)
    foreign = official.RAR.to_foreign(gen.state_dict())
    assert official.detect_layout(foreign) == "rar"
    assert foreign["cls_token"].shape == (1, 1, 32) and foreign["pos_embed"].shape == (1, 256 + 1024, 32)
    back = official.to_tokenkit(foreign)
    again = tk.build("rar-b", width=32, depth=2, heads=2, mlp_dim=64)
    tk.load_weights(again, back)
    assert all(torch.equal(a, b) for a, b in zip(gen.state_dict().values(), again.state_dict().values()))


def test_from_pretrained_infers_rar_b_from_an_official_file(tmp_path):
    """A file with the official RAR-B keys and shapes (built on meta, written as zeros) loads by shapes."""
    meta = tk.build("rar-b", device="meta")
    state = {k: torch.zeros(v.shape) for k, v in official.RAR.to_foreign(meta.state_dict()).items()}
    torch.save(state, tmp_path / "rar_b.bin")
    gen = tk.from_pretrained(tmp_path / "rar_b.bin")
    assert gen.config.num_tokens == 256 and gen.backbone.width == 768 and gen.config.sampling.guidance == 16.0


# ---- decoding ----------------------------------------------------------------------------------------------------
def test_cached_and_uncached_next_token_logits_equal_the_teacher_forced_ones(tiny):
    ids, labels = torch.randint(0, tiny.codebook_size, (3, tiny.num_tokens)), torch.tensor([0, 4, 9])
    full = tiny(ids, labels)
    condition = tiny.condition_ids(labels, torch.zeros(3, dtype=torch.bool))
    cache = tiny.new_cache(3)
    with torch.no_grad():
        cached = torch.stack([tiny.next_logits(condition, ids[:, :m], cache) for m in range(tiny.num_tokens)], 1)
        recomputed = torch.stack([tiny.next_logits(condition, ids[:, :m]) for m in range(tiny.num_tokens)], 1)
    assert torch.allclose(cached, full, atol=1e-5) and torch.allclose(recomputed, full, atol=1e-5)
    assert cache.length == tiny.num_tokens + 1


@pytest.mark.parametrize("guidance", [0.0, 3.0])
def test_generate_with_and_without_the_cache_gives_the_same_ids(tiny, guidance):
    kwargs = dict(guidance=guidance, temperature=1.0)
    cached = tiny.generate([1, 2, 3], generator=torch.Generator().manual_seed(5), **kwargs)
    recomputed = tiny.generate([1, 2, 3], generator=torch.Generator().manual_seed(5), kv_cache=False, **kwargs)
    assert torch.equal(cached, recomputed)
    assert cached.shape == (3, tiny.num_tokens) and cached.dtype == torch.int64


def test_sampling_is_reproducible_and_the_noise_hook_replaces_the_draws(tiny):
    a = tiny.generate([1, 2], generator=torch.Generator().manual_seed(0))
    b = tiny.generate([1, 2], generator=torch.Generator().manual_seed(0))
    c = tiny.generate([1, 2], generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    draws = []
    zeros = tiny.generate([1, 2], noise=lambda shape: draws.append(shape) or torch.zeros(shape))
    assert draws == [(2,)] * tiny.num_tokens
    ones = tiny.generate([1, 2], noise=lambda shape: torch.full(shape, 0.999999))
    assert not torch.equal(zeros, ones)


def test_temperature_zero_takes_the_most_likely_token(tiny):
    ids = tiny.generate([3], temperature=0.0, guidance=0.0)
    condition = tiny.condition_ids(torch.tensor([3]), torch.zeros(1, dtype=torch.bool))
    with torch.no_grad():
        logits = tiny(ids, torch.tensor([3]))
    assert torch.equal(logits.argmax(-1), ids)
    assert condition.item() == tiny.codebook_size + 1 + 3


def test_guidance_runs_one_batched_pass_per_token(tiny, monkeypatch):
    batches = []
    real = tiny.next_logits
    monkeypatch.setattr(tiny, "next_logits", lambda c, ids, cache: batches.append(c.shape[0]) or real(c, ids, cache))
    tiny.generate([1, 2], guidance=2.0)
    assert batches == [4] * tiny.num_tokens
    batches.clear()
    tiny.generate([1, 2], guidance=0.0)
    assert batches == [2] * tiny.num_tokens


def test_guidance_schedules():
    assert float(guidance_at(ARSamplingConfig(guidance=5.0, guidance_decay="constant"), 0, 10)) == 5.0
    assert float(guidance_at(ARSamplingConfig(guidance=5.0, guidance_decay="linear"), 5, 10)) == 3.0
    power = ARSamplingConfig(guidance=5.0, guidance_pow=1.0)
    assert float(guidance_at(power, 0, 10)) == 1.0 and abs(float(guidance_at(power, 5, 10)) - 3.0) < 1e-6
    assert float(guidance_at(ARSamplingConfig(guidance=5.0, guidance_pow=0.0), 0, 10)) == 5.0  # p = 0: constant


def test_top_k_top_p_and_the_inverse_cdf_draw():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=1)).sum() == 3
    kept = ~torch.isinf(filter_logits(logits, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]
    assert (~torch.isinf(filter_logits(logits, top_p=0.1))).sum() == 1  # at least one token
    assert [int(draw_token(logits, torch.tensor([u]))) for u in (0.0, 0.49, 0.51, 0.81, 0.96, 1.0)] == [0, 0, 1, 2, 3, 3]


# ---- training: orders --------------------------------------------------------------------------------------------
def test_permuted_orders_predict_each_token_from_the_ones_before_it_in_that_order(tiny):
    n = tiny.num_tokens
    ids, labels = torch.randint(0, tiny.codebook_size, (1, n)), torch.tensor([2])
    orders = torch.randperm(n)[None]
    keep = torch.zeros(1, dtype=torch.bool)
    with torch.no_grad():
        logits = tiny(ids, labels, keep, orders=orders)
        last = orders[0, -1]
        changed = ids.clone()
        changed[0, last] = (ids[0, last] + 1) % tiny.codebook_size
        again = tiny(changed, labels, keep, orders=orders)
    assert torch.equal(logits, again)  # the last token in the order is input to no prediction
    first = orders[0, 0]
    changed = ids.clone()
    changed[0, orders[0, 1:]] = (ids[0, orders[0, 1:]] + 1) % tiny.codebook_size
    with torch.no_grad():
        only_class = tiny(changed, labels, keep, orders=orders)
    assert torch.allclose(only_class[0, first], logits[0, first], atol=1e-6)  # the first sees only the class


def test_random_ratio_draws_orders_in_training_only(tiny):
    tiny.random_ratio = 1.0
    orders = tiny.sample_orders(4, generator=torch.Generator().manual_seed(0))
    assert orders.shape == (4, tiny.num_tokens) and all(sorted(o.tolist()) == list(range(tiny.num_tokens))
                                                        for o in orders)
    tiny.random_ratio = 0.0
    assert tiny.sample_orders(4) is None
    tiny.train()
    ids, labels = torch.randint(0, tiny.codebook_size, (4, tiny.num_tokens)), torch.arange(4)
    loss = torch.nn.functional.cross_entropy(tiny(ids, labels).transpose(1, 2), ids)
    loss.backward()
    assert tiny.token_embedding.weight.grad is not None


# ---- errors ------------------------------------------------------------------------------------------------------
def test_bad_input_is_named():
    with pytest.raises(ContractError, match="causal backbone"):
        tk.build(tk.GeneratorSpec(generator=tk.Part("ar", backbone=tk.Part("dit", width=16, depth=1, heads=2,
                                                                              mlp_dim=32))))
    gen = tk.build("rar-tiny")
    with pytest.raises(ContractError, match="sampling options of ARGenerator are"):
        gen.generate([1], steps=4)
    with pytest.raises(ContractError, match=r"labels must lie in \[0, 10\)"):
        gen.generate([10])
    with pytest.raises(ContractError, match="indices must be integer ids of shape"):
        gen(torch.zeros(1, 3, dtype=torch.long), torch.tensor([0]))
    with pytest.raises(ContractError, match="orders must be integer permutations"):
        gen(torch.zeros(1, 8, dtype=torch.long), torch.tensor([0]), orders=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ConfigError, match="top_p"):
        tk.build("rar-tiny", top_p=0.0)


def test_generate_images_and_the_cli_with_rar(tmp_path, capsys):
    images = tk.generate_images(tk.build("rar-tiny"), tk.build("titok-tiny"), [1, 2], seed=0, precision="fp32")
    assert images.shape == (2, 3, 32, 32)
    from tokenkit.cli import main

    out = tmp_path / "g.png"
    assert main(["generate", "rar-tiny", "titok-tiny", "--labels", "1", "--precision", "fp32", "--out", str(out)]) == 0
    assert out.is_file()
    capsys.readouterr()
    assert main(["generate", "rar-tiny", "titok-tiny", "--steps", "4", "--out", str(out)]) == 2
    assert "rar-tiny (ARSamplingConfig) takes no --steps" in capsys.readouterr().err
