"""The vector-quantize-pytorch wrappers (vq-ema, fsq, lfq, rvq, simvq) inside real compositions."""

import math
import warnings

import pytest
import torch

import tokenkit as tk
from tokenkit.contracts import check_indices
from tokenkit.errors import ContractError
from tokenkit.pipelines import check_pair
from tokenkit.testing import tiny_part

NEW = ["vq-ema", "fsq", "lfq", "rvq", "simvq"]


@pytest.fixture(scope="module")
def images():
    return tk.data.sample_images(32, per_image=1, seed=0)[:4]  # real photographs, (4, 3, 32, 32) in [0, 1]


def tiny_tokenizer(quantizer: tk.Part) -> tk.Tokenizer:
    torch.manual_seed(0)
    return tk.build(tk.spec("titok-tiny").replace(quantizer=quantizer))


@pytest.mark.parametrize("name", NEW)
def test_tokenize_detokenize_in_a_titok_composition(name, images):
    tok = tiny_tokenizer(tiny_part("quantizer", name))
    tok.train()
    tok(images)  # one training forward: EMA / k-means state is set up as in real use
    tok.eval()
    q, k, n = tok.num_codebooks, tok.codebook_size, tok.num_tokens
    assert q == getattr(tok.quantizer, "num_codebooks", 1) and (q > 1) == (name == "rvq")
    ids = tok.tokenize(images)
    assert ids.dtype == torch.int64
    assert ids.shape == ((4, n, q) if q > 1 else (4, n))
    assert 0 <= int(ids.min()) and int(ids.max()) < k
    assert torch.equal(tok.tokenize(images), ids)  # eval mode is deterministic
    rec = tok.detokenize(ids)
    assert rec.shape == images.shape and rec.min() >= 0 and rec.max() <= 1
    assert torch.allclose(rec, tok.decode(tok.quantizer.lookup(ids)).clamp(0, 1))
    out = tok(images)
    assert torch.equal(out.indices, ids)
    assert torch.equal(out.codes, tok.quantizer.lookup(ids))
    assert tok.bits_per_image == pytest.approx(n * q * math.log2(k))
    for key in ("usage", "perplexity"):
        assert key in out.stats and out.stats[key].ndim == 0
    assert 0 < out.stats["usage"] <= 1 and 1 <= out.stats["perplexity"] <= k + 1e-3


@pytest.mark.parametrize("name", NEW)
def test_round_trip_through_save_and_from_pretrained(name, images, tmp_path):
    tok = tiny_tokenizer(tiny_part("quantizer", name))
    tok.train()
    tok(images)
    tok.eval()
    tk.save_pretrained(tok, tmp_path)
    loaded = tk.from_pretrained(tmp_path)
    assert loaded.spec == tok.spec
    assert torch.equal(loaded.tokenize(images), tok.tokenize(images))


def test_fsq_codebook_size_and_defaults():
    fsq = tk.build_part("quantizer", "fsq")
    assert fsq.codebook_size == 8 * 5 * 5 * 5 and fsq.config.in_dim == 4
    spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("fsq", levels=(8, 8, 8, 5, 5, 5)))
    assert tk.TokenizerSpec.from_json(spec.to_json()) == spec  # levels survive JSON (list -> tuple)
    assert tk.build(spec, device="meta").codebook_size == 64_000
    with pytest.raises(tk.ConfigError, match="preserve_symmetry"):
        tk.spec("titok-tiny").replace(quantizer=tk.Part("fsq", levels=(2, 3)))


def test_lfq_needs_a_power_of_two():
    with pytest.raises(tk.ConfigError, match="power of 2"):
        tk.spec("titok-tiny").replace(quantizer=tk.Part("lfq", codebook_size=1000))


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_vq_ema_updates_its_codebook_in_training_mode_only():
    torch.manual_seed(0)
    vq = tk.build_part("quantizer", tk.Part("vq-ema", codebook_size=16, dim=4, decay=0.8))
    latents = torch.randn(4, 8, 4)
    before = _state(vq)
    vq.eval()
    with torch.no_grad():
        first, again = vq(latents), vq(latents)
    assert _same(before, _state(vq))  # eval: codebook, EMA statistics untouched
    assert torch.equal(first.codes, again.codes) and torch.equal(first.indices, again.indices)
    vq.train()
    vq(latents)
    assert not torch.equal(before["vq._codebook.embed"], vq.codebook())
    assert not torch.equal(before["vq._codebook.cluster_size"], vq.vq._codebook.cluster_size)


def test_vq_ema_kmeans_init_happens_in_training_mode_only():
    torch.manual_seed(0)
    vq = tk.build_part("quantizer", tk.Part("vq-ema", codebook_size=16, dim=4, kmeans_init=True)).eval()
    latents = torch.randn(2, 5, 4)  # 10 vectors for 16 codes: the library would log a warning
    with pytest.warns(UserWarning, match="not initialised yet"):
        out = vq(latents)
    assert not bool(vq.vq._codebook.initted) and torch.equal(vq.codebook(), torch.zeros(16, 4))
    assert torch.equal(out.indices, torch.zeros(2, 5, dtype=torch.int64))
    vq.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        vq(latents)
    assert bool(vq.vq._codebook.initted) and vq.codebook().abs().sum() > 0


def test_eval_loss_is_the_commitment_loss_and_gradients_pass_straight_through():
    torch.manual_seed(0)
    for part in (tk.Part("vq-ema", codebook_size=8, dim=4), tk.Part("rvq", num_quantizers=2, codebook_size=8, dim=4)):
        quantizer = tk.build_part("quantizer", part).eval()
        latents = torch.randn(2, 3, 4, requires_grad=True)
        out = quantizer(latents)
        assert out.loss > 0 and out.stats["commitment_loss"] > 0
        out.codes.sum().backward()
        assert torch.equal(latents.grad, torch.ones_like(latents))


def test_rvq_index_layout():
    torch.manual_seed(0)
    rvq = tk.build_part("quantizer", tk.Part("rvq", num_quantizers=3, codebook_size=8, dim=4)).eval()
    latents = torch.randn(2, 5, 4)
    out = rvq(latents)
    assert out.indices.shape == (2, 5, 3) and rvq.num_codebooks == 3
    # level q on the last axis, coarse to fine: level 0 alone is the first codebook's nearest code
    first = rvq.rvq.layers[0].codebook
    assert torch.equal(out.indices[..., 0], torch.cdist(latents, first[None]).argmin(-1))
    assert torch.allclose(rvq.lookup(out.indices), first[out.indices[..., 0]]
                          + rvq.rvq.layers[1].codebook[out.indices[..., 1]]
                          + rvq.rvq.layers[2].codebook[out.indices[..., 2]], atol=1e-6)
    with pytest.raises(ContractError, match=r"\(B, N, 3\)"):
        rvq.lookup(out.indices[..., 0])


def test_rvq_detokenize_rejects_one_id_per_token(images):
    tok = tiny_tokenizer(tk.Part("rvq", num_quantizers=3, codebook_size=16, dim=8)).eval()
    ids = tok.tokenize(images)
    assert ids.shape == (4, 8, 3)
    with pytest.raises(ContractError, match=r"must have shape \(B, 8, 3\): one id per token and codebook level"):
        tok.detokenize(ids[..., 0])
    with pytest.raises(ContractError, match=r"\(B, 8, 3\)"):
        tok.detokenize(ids[:, None, :, 0])  # the official (B, 1, N) layout is for one codebook only
    with pytest.raises(ContractError, match=r"\[0, 16\)"):
        tok.detokenize(ids + 16)


def test_check_indices_layouts():
    ids = torch.zeros(2, 6, dtype=torch.int64)
    assert check_indices(ids, num_tokens=6, codebook_size=4).shape == (2, 6)
    assert check_indices(ids[:, None], num_tokens=6, codebook_size=4).shape == (2, 6)
    multi = torch.zeros(2, 6, 3, dtype=torch.int32)
    checked = check_indices(multi, num_tokens=6, codebook_size=4, num_codebooks=3)
    assert checked.shape == (2, 6, 3) and checked.dtype == torch.int64
    for bad in (ids, multi[..., :2], multi[:, :5]):
        with pytest.raises(ContractError, match=r"\(B, 6, 3\)"):
            check_indices(bad, num_tokens=6, codebook_size=4, num_codebooks=3)
    with pytest.raises(ContractError, match=r"\(B, 6\)"):
        check_indices(multi, num_tokens=6, codebook_size=4)


def test_generation_refuses_a_tokenizer_with_several_codebooks_per_token():
    generator = tk.build("maskgit-tiny")
    tok = tiny_tokenizer(tk.Part("rvq", num_quantizers=2, codebook_size=generator.codebook_size, dim=8))
    with pytest.raises(ContractError, match="2 codebooks per token"):
        check_pair(generator, tok)
    with pytest.raises(ContractError, match="one id per token position"):
        tk.generate_images(generator, tok, [1, 2], seed=0)
    check_pair(generator, tiny_tokenizer(tk.Part("fsq", levels=(4, 4, 4, 4))))  # one id per token: fine
