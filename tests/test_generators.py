"""Masked-token generators: the sampler's semantics, masking, loss, pipeline and CLI."""

from __future__ import annotations

import math

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import ContractError
from tokenkit.generators.sampling import SCHEDULES, gumbel, mask_tokens, masked_token_loss


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    model = tk.build("maskgit-tiny")
    with torch.no_grad():  # sharper logits than the init, so that samples depend on the weights
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


LABELS = torch.tensor([0, 3, 7])


def recorded_noise(seed: int = 0):
    """Uniform draws from a seeded generator, recorded so that a reference can replay them."""
    g = torch.Generator().manual_seed(seed)
    draws = []

    def noise(shape):
        draws.append(torch.rand(shape, generator=g))
        return draws[-1]

    return noise, draws


def official_reference(model, labels, draws, *, steps, guidance, decay, pow_=3.0, temperature, annealing):
    """Official ``ImageBert.generate`` (``modeling/maskgit.py`` L111-193) written out: two separate
    forward passes per guided step, the official
    formulas, count of sample 0, ties re-masked; replays the recorded uniform draws."""
    draws = list(draws)
    n, mask = model.num_tokens, model.mask_id
    ids = torch.full((labels.shape[0], n), mask)
    scale = guidance if decay == "constant" else 0.0
    for step in range(steps):
        ratio = (step + 1) / steps
        tau = temperature * (1 - ratio)
        is_mask = ids == mask
        if decay == "power-cosine":
            scale = (guidance - 1) * (1 - math.cos((step / steps) ** pow_ * math.pi)) / 2 + 1
        if scale != 0:
            cond = model(ids, labels, drop_labels=torch.zeros_like(labels, dtype=torch.bool))
            uncond = model(ids, labels, drop_labels=torch.ones_like(labels, dtype=torch.bool))
            logits = uncond + (cond - uncond) * scale if decay == "power-cosine" else cond + (cond - uncond) * scale
        else:
            logits = model(ids, labels, drop_labels=torch.zeros_like(labels, dtype=torch.bool))
        if annealing:
            logits = logits / (0.5 + 0.8 * (1 - ratio))
        sampled = (logits + tau * gumbel(draws.pop(0))).argmax(-1)
        conf = logits.gather(-1, sampled[..., None])[..., 0]
        sampled = torch.where(is_mask, sampled, ids)
        conf = torch.where(is_mask, conf, torch.inf)
        count = math.floor(n * math.acos(ratio) / (math.pi / 2))
        count = max(1, min(int(is_mask[0].sum()) - 1, count))
        conf = conf + tau * gumbel(draws.pop(0))
        cutoff = conf.sort(-1).values[:, count - 1 : count]
        ids = sampled if step == steps - 1 else torch.where(conf <= cutoff, mask, sampled)
        if decay == "linear":
            scale = ratio * guidance
    return ids


@pytest.mark.parametrize(
    "settings",
    [
        dict(steps=6, guidance=2.0, decay="constant", temperature=3.0, annealing=False),
        dict(steps=5, guidance=4.5, decay="linear", temperature=9.5, annealing=True),
        dict(steps=7, guidance=6.9, decay="power-cosine", temperature=2.8, annealing=True),
    ],
)
def test_compat_sampler_matches_the_official_semantics(gen, settings):
    """Same noise -> same tokens as the two-pass official loop (tokenkit runs one batched pass)."""
    noise, draws = recorded_noise()
    ids = gen.generate(LABELS, noise=noise, steps=settings["steps"], guidance=settings["guidance"],
                       guidance_decay=settings["decay"], temperature=settings["temperature"],
                       softmax_annealing=settings["annealing"], compat=True)
    with torch.no_grad():
        expected = official_reference(gen, LABELS, draws, **settings)
    assert torch.equal(ids, expected)


@pytest.mark.parametrize("compat", [True, False])
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_masks_follow_the_schedule_and_none_remain(gen, compat, schedule):
    steps, n = 5, gen.num_tokens
    history = []
    ids = gen.generate(LABELS, steps=steps, schedule=schedule, compat=compat, temperature=1.0,
                       generator=torch.Generator().manual_seed(0), callback=lambda s, x: history.append(x.clone()))
    assert len(history) == steps and torch.equal(history[-1], ids)
    masked = torch.full((LABELS.shape[0],), n)
    for step, state in enumerate(history[:-1]):
        target = math.floor(n * SCHEDULES[schedule]((step + 1) / steps))
        expected = (masked - 1).clamp(max=target).clamp(min=1)
        masked = (state == gen.mask_id).sum(-1)
        assert torch.equal(masked, expected), (step, masked, expected)
    assert ids.dtype == torch.int64 and ids.shape == (3, n)
    assert int(ids.min()) >= 0 and int(ids.max()) < gen.codebook_size  # no mask id left


def test_sampling_is_reproducible_under_a_generator(gen):
    a = gen.generate(LABELS, generator=torch.Generator().manual_seed(5))
    b = gen.generate(LABELS, generator=torch.Generator().manual_seed(5))
    c = gen.generate(LABELS, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_guidance_zero_is_the_plain_conditional_path(gen, monkeypatch):
    calls = []
    forward = type(gen).forward

    def spy(self, indices, labels, drop_labels=None, **kw):
        calls.append((indices.shape[0], None if drop_labels is None else bool(drop_labels.any())))
        return forward(self, indices, labels, drop_labels, **kw)

    monkeypatch.setattr(type(gen), "forward", spy)
    for decay in ("constant", "linear"):
        calls.clear()
        noise, draws = recorded_noise(1)
        ids = gen.generate(LABELS, guidance=0.0, guidance_decay=decay, noise=noise, steps=4, temperature=2.0)
        assert calls == [(3, False)] * 4  # one conditional pass of batch B per step, no unconditional
        with torch.no_grad():
            expected = official_reference(gen, LABELS, draws, steps=4, guidance=0.0, decay="constant",
                                          temperature=2.0, annealing=False)
        assert torch.equal(ids, expected)
    calls.clear()
    gen.generate(LABELS, guidance=2.0, steps=2)
    assert calls == [(6, True)] * 2  # guided: ONE batched pass over [cond; uncond]


def test_generator_validates_its_inputs(gen):
    ids = torch.zeros(2, gen.num_tokens, dtype=torch.long)
    with pytest.raises(ContractError, match=r"indices must be integer ids of shape \(B, 8\)"):
        gen(ids[:, :5], torch.tensor([0, 1]))
    with pytest.raises(ContractError, match=r"\[0, 256\]"):
        gen(ids + 257, torch.tensor([0, 1]))
    with pytest.raises(ContractError, match=r"labels must lie in \[0, 10\)"):
        gen(ids, torch.tensor([0, 10]))
    with pytest.raises(ContractError, match="labels must be integer class ids"):
        gen(ids, torch.tensor([0.0, 1.0]))
    with pytest.raises(ContractError, match="sampling options of MaskGIT are"):
        gen.generate([1], temprature=1.0)
    with pytest.raises(ValueError, match="guidance_decay must be one of"):
        gen.generate([1], guidance_decay="cosine")


def test_label_dropout_in_training_only():
    model = tk.build("maskgit-tiny", label_dropout=1.0, dropout=0.0)
    ids = torch.randint(0, 257, (4, 8))
    labels = torch.tensor([0, 1, 2, 3])
    dropped = model(ids, labels, drop_labels=torch.ones(4, dtype=torch.bool))
    kept = model(ids, labels, drop_labels=torch.zeros(4, dtype=torch.bool))
    assert torch.equal(model.eval()(ids, labels), kept)  # eval: nothing dropped
    assert torch.equal(model.train()(ids, labels), dropped)  # training: dropped with probability 1
    assert not torch.allclose(kept, dropped)


def test_mask_tokens_and_loss():
    g = torch.Generator().manual_seed(0)
    indices = torch.randint(0, 100, (64, 16), generator=g)
    masked, mask = mask_tokens(indices, 100, generator=g)
    assert mask.any(-1).all()  # at least one masked position per sample
    assert torch.equal(masked[mask], torch.full_like(masked[mask], 100))
    assert torch.equal(masked[~mask], indices[~mask])
    fraction = mask.float().mean().item()
    assert 0.55 < fraction < 0.75  # E[arccos(t) / (pi/2)] = 2/pi ~ 0.64
    logits = torch.randn(64, 16, 100, requires_grad=True)
    loss = masked_token_loss(logits, indices, torch.ones_like(mask), label_smoothing=0.0)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(logits.reshape(-1, 100), indices.reshape(-1)))
    weighted = masked_token_loss(logits, indices, mask, unmasked_weight=0.0, label_smoothing=0.0)
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), indices, reduction="none")
    assert torch.allclose(weighted, ce[mask].mean())
    weighted.backward()
    assert logits.grad[~mask].abs().sum() == 0


def test_generate_images_pipeline():
    gen, tok = tk.build("maskgit-tiny"), tk.build("titok-tiny")
    images = tk.generate_images(gen, tok, [1, 2, 3], seed=0, steps=3)
    assert images.shape == (3, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, tk.generate_images(gen, tok, [1, 2, 3], seed=0, steps=3))
    with pytest.raises(ContractError, match="do not match"):
        tk.generate_images(gen, tk.build("titok-tiny", num_tokens=4), [1], seed=0)


def test_cli_generate_writes_pngs(tmp_path, capsys):
    from PIL import Image

    from tokenkit.cli import main

    out = tmp_path / "grid.png"
    assert main(["generate", "maskgit-tiny", "titok-tiny", "--labels", "1,2,3", "--steps", "3", "--out", str(out),
                 "--separate", str(tmp_path / "each")]) == 0
    assert Image.open(out).size[0] > 32
    assert sorted(p.name for p in (tmp_path / "each").iterdir()) == [
        "00000_class1.png", "00001_class2.png", "00002_class3.png"]
    assert main(["generate", "maskgit-tiny", "titok-tiny", "--labels", "x"]) == 2
    assert "--labels must be comma-separated" in capsys.readouterr().err


def test_cli_generate_precision_and_the_deprecated_bf16_flag(tmp_path, capsys):
    from tokenkit.cli import main

    base = ["generate", "maskgit-tiny", "titok-tiny", "--labels", "1", "--steps", "1", "--out", str(tmp_path / "g.png")]
    assert main([*base, "--precision", "fp32"]) == 0
    captured = capsys.readouterr()
    assert "precision fp32 (" in captured.out and "deprecated" not in captured.err
    assert main(base) == 0
    assert capsys.readouterr().out.count("precision auto -> ") == 1  # printed once, with the reason
    assert main([*base, "--bf16"]) == 0
    captured = capsys.readouterr()
    assert "precision bf16 (" in captured.out and "--bf16 is deprecated; use --precision bf16" in captured.err
    assert main([*base, "--bf16", "--precision", "fp32"]) == 2
    assert "--bf16 contradicts --precision fp32" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--precision", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err
