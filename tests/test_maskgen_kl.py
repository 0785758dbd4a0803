"""The ``maskgen-kl`` text-to-image generator: official layouts and counts, the diffusion (schedule, loss,
sampler), the head, training, sampling and its guidance, errors."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
import torch
from _helpers import KEYS_DIR, official_keys

import tokenkit as tk
from tokenkit.contracts import TextEmbeddings
from tokenkit.errors import ConfigError, ContractError
from tokenkit.generators import diffusion as diffusion_module
from tokenkit.generators.diffusion import GaussianDiffusion, cosine_betas, cosine_diffusion, space_timesteps
from tokenkit.generators.diffusion_head import DiffusionHead, DiffusionHeadConfig
from tokenkit.generators.maskgen_kl import aesthetic_encoding
from tokenkit.testing import tiny_part
from tokenkit.weights import official

SIZES = {"maskgen-kl-l": "maskgen_kl_l", "maskgen-kl-xl": "maskgen_kl_xl"}
PROMPTS = ["a red rocket", "a cat on a mat"]


def _own_parameters(gen):
    return sum(p.numel() for name, p in gen.named_parameters() if not name.startswith("text_encoder."))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny models run thousands of very small ops, for which waking a second thread costs more than it
    saves (10-50x slower on a loaded 2-core machine); the setting is restored after this module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return tk.build("maskgen-kl-tiny")


# ---- official layouts --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SIZES))
def test_official_key_coverage_and_parameter_counts(name):
    gen = tk.build(name, device="meta")
    assert {k: tuple(v.shape) for k, v in official.MASKGEN_KL.to_foreign(gen.state_dict()).items()} \
        == official_keys(SIZES[name])
    counts = json.loads((KEYS_DIR / "maskgen_kl_param_counts.json").read_text())[name]
    assert _own_parameters(gen) == counts["parameters"]
    assert sum(p.numel() for p in gen.head.parameters()) == counts["diffloss_parameters"]
    assert not any(k.startswith("text_encoder.") for k in gen.state_dict())  # CLIP weights are external


def test_layout_detection_and_converter_round_trip(tiny):
    foreign = official.MASKGEN_KL.to_foreign(tiny.state_dict())
    assert official.detect_layout(foreign) == "maskgen-kl" and official.detect_layout(tiny.state_dict()) == "tokenkit"
    assert foreign["mask_token"].shape == (1, 1, 32) and foreign["decoder_pos_embed_learned"].shape == (1, 8, 32)
    again = tk.build("maskgen-kl-tiny")
    tk.load_weights(again, official.to_tokenkit(foreign))
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), again.state_dict().values()))


def test_save_load_round_trip_and_an_official_file(tiny, tmp_path):
    tk.save_pretrained(tiny, tmp_path / "saved")
    loaded = tk.from_pretrained(tmp_path / "saved")
    assert loaded.spec == tiny.spec
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), loaded.state_dict().values()))
    a = tiny.generate(PROMPTS, generator=torch.Generator().manual_seed(0), steps=2, diffusion_steps=2)
    b = loaded.generate(PROMPTS, generator=torch.Generator().manual_seed(0), steps=2, diffusion_steps=2)
    assert torch.equal(a, b)
    torch.save(official.MASKGEN_KL.to_foreign(tiny.state_dict()), tmp_path / "maskgen_kl.bin")
    from_official = tk.build("maskgen-kl-tiny", pretrained=tmp_path / "maskgen_kl.bin")
    assert all(torch.equal(a, b) for a, b in zip(tiny.state_dict().values(), from_official.state_dict().values()))


# ---- the diffusion -----------------------------------------------------------------------------------------------
def test_cosine_schedule_and_respacing_match_their_formulas():
    t_max = 1000
    betas = cosine_betas(t_max)
    abar = [math.cos((s / t_max + 0.008) / 1.008 * math.pi / 2) ** 2 for s in range(t_max + 1)]
    expected = np.array(abar[1:]) / abar[0]
    assert np.allclose(np.cumprod(1 - betas)[:-1], expected[:-1], rtol=1e-10, atol=0)  # the last beta is capped
    assert betas.max() == 0.999 and betas.dtype == np.float64
    kept = space_timesteps(t_max, 100)
    assert kept == [round(j * 999 / 99) for j in range(100)]
    assert space_timesteps(10, "2,3") == [0, 4, 5, 7, 9] and space_timesteps(t_max, t_max) == list(range(t_max))
    full, spaced = cosine_diffusion(t_max), cosine_diffusion(t_max, 100)
    assert spaced.timestep_map.tolist() == kept
    assert np.allclose(spaced.alphas_cumprod, full.alphas_cumprod[kept], rtol=1e-9, atol=0)
    assert spaced.posterior_log_variance_clipped[0] == spaced.posterior_log_variance_clipped[1]
    assert np.allclose(spaced.posterior_variance[1:], spaced.betas[1:] * (1 - spaced.alphas_cumprod[:-1])
                       / (1 - spaced.alphas_cumprod[1:]))
    with pytest.raises(ValueError, match="cannot respace a part of 10 diffusion steps to 11"):
        space_timesteps(10, 11)


def test_training_loss_is_mse_plus_the_variational_bound():
    diffusion = cosine_diffusion(1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    seen = []

    def exact(xt, ts):  # the true noise, and the posterior variance (v = -1)
        seen.append(ts)
        return torch.cat([noise, -torch.ones_like(noise)], dim=1)

    loss = diffusion.training_loss(exact, x0, t, noise)
    assert torch.equal(seen[0], t)  # all 1000 steps kept: the model sees the step itself
    assert loss[1:].abs().max() < 1e-4  # eps exact and the true posterior: MSE 0 and KL 0
    assert loss[0] > 0  # at t = 0 the decoder NLL of the discretised Gaussian


def test_sampling_uses_the_original_timesteps_and_the_temperature():
    diffusion = cosine_diffusion(1000, 5)
    seen = []

    def zero(x, t):
        seen.append(int(t[0]))
        return torch.zeros(x.shape[0], 2 * x.shape[1])

    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    cold = diffusion.sample(zero, noise, temperature=0.0)
    assert seen == list(reversed(space_timesteps(1000, 5)))
    draws = []
    warm = diffusion.sample(zero, noise, step_noise=lambda step, shape: draws.append(step) or torch.ones(shape))
    assert draws == [4, 3, 2, 1] and not torch.equal(cold, warm)
    ones = diffusion.sample(zero, noise, temperature=0.0, step_noise=lambda step, shape: torch.ones(shape))
    assert torch.equal(cold, ones)  # temperature 0: no noise


# ---- the head ----------------------------------------------------------------------------------------------------
def test_head_shapes_and_guidance_in_one_pass():
    head = DiffusionHead(DiffusionHeadConfig(token_dim=3, cond_dim=8, width=16, depth=2))
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    x, t = torch.randn(5, 3), torch.randint(0, 1000, (5,))
    cond, uncond = torch.randn(5, 8), torch.randn(5, 8)
    out = head(x, t, cond)
    assert out.shape == (5, 6)
    calls = []
    head.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    guided = head.guided(x, t, cond, uncond, 2.5)
    assert calls == [10] and guided.shape == (5, 6)
    eps_u = head(x, t, uncond)[:, :3]
    assert torch.allclose(guided[:, :3], eps_u + 2.5 * (out[:, :3] - eps_u), atol=1e-5)
    assert torch.allclose(guided[:, 3:], out[:, 3:], atol=1e-6)  # the variance part is the conditional one
    assert torch.allclose(head.guided(x, t, cond, uncond, 1.0), out, atol=1e-6)


def test_aesthetic_encoding_is_interleaved_sines_and_cosines():
    scores, dim = torch.tensor([6.5, 0.25]), 8
    x = scores.double()[:, None] * 100 * torch.from_numpy(10000.0 ** (-np.arange(0, dim, 2) / dim))
    expected = torch.stack([torch.sin(x), torch.cos(x)], dim=-1).reshape(2, dim)
    assert torch.allclose(aesthetic_encoding(scores, dim).double(), expected, atol=1e-4)


# ---- forward and training ----------------------------------------------------------------------------------------
def test_forward_ignores_hidden_token_values(tiny):
    text = tiny.encode_text(PROMPTS)
    tokens = torch.randn(2, 8, 4)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, 3:] = True
    changed = tokens.clone()
    changed[:, 3:] += 5.0
    with torch.no_grad():
        z = tiny(tokens, mask, text)
        assert z.shape == (2, 8, 32) and torch.equal(z, tiny(changed, mask, text))
        dropped = tiny(tokens, mask, text, drop_text=torch.tensor([True, False]))
        null = tiny(tokens[:1], mask[:1], tiny.encode_text(""))
    assert torch.allclose(dropped[0], null[0], atol=1e-6) and torch.allclose(dropped[1], z[1], atol=1e-6)


def test_loss_decreases_under_a_few_optimizer_steps():
    torch.manual_seed(0)
    gen = tk.build("maskgen-kl-tiny").train()
    codes = torch.randn(4, 8, 4, generator=torch.Generator().manual_seed(0))
    text = gen.encode_text(["a", "b", "c", "d"])
    trainable = [p for p in gen.parameters() if p.requires_grad]
    assert not any(p is q for p in trainable for q in gen.text_encoder.parameters())
    optimizer = torch.optim.Adam(trainable, lr=3e-3)
    losses = []
    for _ in range(8):
        loss = gen.loss(codes, text, generator=torch.Generator().manual_seed(1))  # the same draws each step
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < 0.9 * losses[0], losses


def test_tiny_configs_build_train_and_sample():
    for seed in range(2):
        gen = tk.build_part("generator", tiny_part("generator", "maskgen-kl", random.Random(seed)))
        n, c = gen.num_tokens, gen.token_dim
        text = gen.encode_text(PROMPTS)
        loss = gen.train().loss(torch.randn(2, n, c), text, generator=torch.Generator().manual_seed(seed))
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert gen.generate(text, generator=torch.Generator().manual_seed(seed)).shape == (2, n, c)


# ---- sampling ----------------------------------------------------------------------------------------------------
def test_generation_shape_determinism_and_schedule(tiny):
    history = []
    a = tiny.generate(PROMPTS, generator=torch.Generator().manual_seed(0),
                      callback=lambda step, codes: history.append(codes.clone()))
    b = tiny.generate(PROMPTS, generator=torch.Generator().manual_seed(0))
    c = tiny.generate(PROMPTS, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 8, 4) and a.dtype == torch.float32 and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    filled = [int((h != 0).any(-1).sum(-1)[0]) for h in history]
    steps = tiny.config.sampling.steps
    expected = [8 - max(1, min(8 - 1, math.floor(8 * math.cos(math.pi / 2 * (s + 1) / steps)))) for s in range(steps)]
    assert filled[:-1] == expected[:-1] and filled[-1] == 8 and torch.equal(history[-1], a)
    assert not tiny.training


def test_generated_codes_are_divided_by_the_scale_factor(tiny, monkeypatch):
    monkeypatch.setattr(GaussianDiffusion, "sample", lambda self, model, noise, **kw: torch.ones_like(noise))
    codes = tiny.generate(["x"], steps=3)
    assert torch.allclose(codes, torch.full_like(codes, 1 / tiny.config.scale_factor))


@pytest.mark.parametrize("guidance", [3.0, 1.0])
def test_text_guidance_is_one_batched_pass(tiny, guidance):
    decoder_batches, head_batches = [], []
    hooks = [tiny.backbone.register_forward_hook(lambda m, args, out: decoder_batches.append(args[0].shape[0])),
             tiny.head.register_forward_hook(lambda m, args, out: head_batches.append(args[0].shape[0]))]
    seen_steps = []
    real = diffusion_module.GaussianDiffusion.sample

    def counting(self, model, noise, **kw):
        seen_steps.append(noise.shape[0])
        return real(self, model, noise, **kw)

    diffusion_module.GaussianDiffusion.sample = counting
    try:
        tiny.generate(PROMPTS, guidance=guidance, steps=3, diffusion_steps=2)
    finally:
        diffusion_module.GaussianDiffusion.sample = real
        for hook in hooks:
            hook.remove()
    branches = 2 if guidance != 1.0 else 1
    assert decoder_batches == [2 * branches] * 3
    assert head_batches == [branches * m for m in seen_steps for _ in range(2)] and sum(seen_steps) == 2 * 8


def test_precomputed_embeddings_and_the_null_prompt(tiny):
    text, null = tiny.encode_text(PROMPTS), tiny.encode_text("")
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    by_prompt = tiny.generate(PROMPTS, generator=g(), steps=2)
    assert torch.equal(tiny.generate(text, generator=g(), steps=2), by_prompt)
    assert torch.equal(tiny.generate(text, null_text=null, generator=g(), steps=2), by_prompt)
    assert not torch.equal(tiny.generate(text, null_text=text.select(slice(1, 2)), generator=g(), steps=2), by_prompt)


# ---- errors ------------------------------------------------------------------------------------------------------
def test_bad_input_is_named(tiny):
    text = tiny.encode_text(PROMPTS)
    tokens, mask = torch.randn(2, 8, 4), torch.ones(2, 8, dtype=torch.bool)
    with pytest.raises(ContractError, match=r"tokens must be float \(B, 8, 4\), got \(2, 8, 3\)"):
        tiny(torch.randn(2, 8, 3), mask, text)
    with pytest.raises(ContractError, match=r"mask must be bool \(2, 8\)"):
        tiny(tokens, mask.float(), text)
    with pytest.raises(ContractError, match="holds 1 prompt"):
        tiny(tokens, mask, tiny.encode_text("a"))
    with pytest.raises(ContractError, match="must be tokenkit TextEmbeddings"):
        tiny(tokens, mask, text.hidden)
    with pytest.raises(ContractError, match=r"text.hidden must be \(B, L, 16\)"):
        tiny(tokens, mask, TextEmbeddings(text.tokens, text.hidden[..., :8], text.pooled))
    with pytest.raises(ContractError, match=r"aesthetic must be a number or a float tensor of shape \(2,\)"):
        tiny(tokens, mask, text, aesthetic=torch.ones(3))
    with pytest.raises(ContractError, match="sampling options of MaskGenKL are steps, guidance"):
        tiny.generate("a", cfg=2.0)
    with pytest.raises(ContractError, match="guidance_schedule must be one of linear, constant"):
        tiny.generate("a", guidance_schedule="cosine")
    with pytest.raises(ContractError, match="prompts must be strings"):
        tiny.generate(["a", 3])
    with pytest.raises(ConfigError, match="text_dim is 768 but the text encoder gives 16"):
        tk.build("maskgen-kl-tiny", text_dim=768)
    with pytest.raises(ConfigError, match="micro_condition_dim must be even"):
        tk.build("maskgen-kl-tiny", micro_condition_dim=7)


def test_without_a_text_encoder_the_errors_say_what_to_do(tiny):
    bare = tk.build("maskgen-kl-tiny", text_encoder=False)
    with pytest.raises(ContractError, match="built without a text encoder"):
        bare.encode_text("a")
    with pytest.raises(ContractError, match="built without a text encoder"):
        bare.generate("a")
    text, null = tiny.encode_text(PROMPTS), tiny.encode_text("")
    assert bare.generate(text, null_text=null, steps=1, diffusion_steps=1).shape == (2, 8, 4)
    assert bare.generate(text, guidance=1.0, steps=1, diffusion_steps=1).shape == (2, 8, 4)
    with pytest.raises(ContractError, match="text dropout .* needs the empty prompt"):
        bare(torch.randn(2, 8, 4), torch.ones(2, 8, dtype=torch.bool), text, drop_text=torch.tensor([True, False]))
    codes = torch.randn(2, 8, 4)
    with pytest.raises(ContractError, match=r"text dropout \(text_dropout=1.0\) needs the empty prompt"):
        tk.build("maskgen-kl-tiny", text_encoder=False, text_dropout=1.0).train().loss(codes, text)
    assert tk.build("maskgen-kl-tiny", text_encoder=False, text_dropout=0.0).train().loss(codes, text).ndim == 0
