"""The trainer: loss goes down, exact resume, atomic checkpoints, optimizer groups."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import tokenkit as tk
from tokenkit.train import EMA, TrainConfig, Trainer, latest_checkpoint, parameter_groups, save_checkpoint


@pytest.fixture(scope="module")
def images():
    return tk.data.sample_images(32, per_image=8, resize=48, seed=0)


def _config(tmp_path, name="run", **changes):
    base = {"model": "titok-tiny", "knobs": {"quantizer": "fsq"}, "steps": 8, "batch_size": 8, "lr": 1e-3,
            "output_dir": str(tmp_path / name), "log_every": 1}
    return TrainConfig(**{**base, **changes})


def _weights(trainer):
    return trainer.accelerator.unwrap_model(trainer.model).state_dict()


def test_loss_decreases_on_the_bundled_images(tmp_path, images):
    trainer = Trainer(_config(tmp_path, steps=40, lr=2e-3, sample_every=20), images)
    trainer.train(progress=False)
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step-0000020.png", "step-0000040.png"]
    assert trainer.model.training  # sampling with the EMA model leaves the trained model in training mode
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    import json

    losses = [json.loads(line)["loss"] for line in lines]
    assert len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_resume_is_bit_exact(tmp_path, images):
    full = Trainer(_config(tmp_path, "full", grad_accum=2), images)
    full.train(progress=False)
    first = Trainer(_config(tmp_path, "split", grad_accum=2), images)
    first.train(stop_after=3, progress=False)
    first.save()
    second = Trainer(_config(tmp_path, "split", grad_accum=2), images)
    assert second.resume() and second.step == 3
    second.train(progress=False)
    a, b = _weights(full), _weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)
    ema_a, ema_b = full.trained_model().state_dict(), second.trained_model().state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_interrupted_checkpoint_never_replaces_the_last_good_one(tmp_path, monkeypatch):
    folder = tmp_path / "checkpoints"
    good = save_checkpoint({"step": 1, "x": torch.ones(2)}, folder, 1)

    def crash(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2, "x": torch.zeros(2)}, folder, 2)
    assert latest_checkpoint(folder) == good
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-0000001.pt"]


def test_weight_decay_groups():
    tok = tk.build("titok-tiny")
    decay, no_decay = parameter_groups(tok, 0.1)
    decayed = {id(p) for p in decay["params"]}
    names = {n for n, p in tok.named_parameters() if id(p) in decayed}
    # the official name-substring rule (utils/train_utils.py L230-231) exempts these by accident
    assert "encoder.patch_embed.weight" in names and "decoder.decoder_embed.weight" in names
    assert not any(n.endswith("bias") or "norm" in n or "ln_" in n for n in names)
    assert "encoder.latent_tokens" not in names and "quantizer.embedding.weight" not in names
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(tok.parameters()))


def test_ema_follows_the_model():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # first update: decay min(0.9, 1/10) = 0.1
    assert torch.allclose(ema.shadow.weight, 0.1 * (model.weight - 1.0) + 0.9 * model.weight)


def _ema_model():
    """Float and float64 parameters; float and long buffers (BatchNorm statistics and its batch count)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    model.add_module("head", torch.nn.Linear(3, 3).double())
    return model


def _ema_step(model, generator):
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype))
    model.train()[:2](torch.randn(2, 3, 6, 6, generator=generator))  # moves the BatchNorm buffers


def test_ema_equals_a_reference_lerp_with_the_warm_up_decay_bit_for_bit():
    model, generator, decay = _ema_model(), torch.Generator().manual_seed(1), 0.8
    ema = EMA(model, decay)
    reference = [p.detach().clone() for p in model.parameters()]
    for k in range(6):
        _ema_step(model, generator)
        ema.update(model)
        weight = 1 - min(decay, (1 + k) / (10 + k))  # 0.9, 0.8182, ..., then 1 - decay
        reference = [r.lerp(p.detach(), weight) for r, p in zip(reference, model.parameters())]
    assert all(torch.equal(a, r) for a, r in zip(ema.shadow.parameters(), reference))
    assert all(torch.equal(a, b) for a, b in zip(ema.shadow.buffers(), model.buffers()))  # copied, not averaged
    assert int(model[1].num_batches_tracked) == 6 and not ema.shadow.training
    assert not any(p.requires_grad for p in ema.shadow.parameters())


def test_ema_resumes_from_a_state_dict_of_the_former_class():
    """The former ``EMA(nn.Module)`` saved its average under ``shadow.`` and ``updates`` (updates done)."""
    model, generator = _ema_model(), torch.Generator().manual_seed(2)
    ema = EMA(model, 0.999)
    for _ in range(3):
        _ema_step(model, generator)
        ema.update(model)
    new_style = {k: v.clone() for k, v in ema.state_dict().items()}
    old_style = {"updates": torch.tensor(3), **{f"shadow.{k}": v.clone() for k, v in ema.shadow.state_dict().items()}}
    assert set(new_style) == {"n_averaged", *(f"module.{k}" for k in ema.shadow.state_dict())}
    _ema_step(model, generator)
    ema.update(model)  # update k = 3
    for state in (old_style, new_style):
        resumed = EMA(_ema_model(), 0.999)
        resumed.load_state_dict(state)
        assert int(resumed.n_averaged) == 4
        resumed.update(model)
        assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), ema.state_dict().values()))


def test_bad_config_is_refused():
    with pytest.raises(tk.ConfigError, match="precision must be one of auto, fp32, bf16, fp16"):
        TrainConfig(precision="bf32")
    with pytest.raises(tk.ConfigError, match="mixed_precision is deprecated"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(tk.ConfigError, match="contradicts"):
        TrainConfig(mixed_precision="bf16", precision="fp32")
    with pytest.raises(tk.ConfigError, match="steps must be a positive int"):
        TrainConfig(steps=0)


def test_recipe_runs_and_resumes_from_the_cli(tmp_path, capsys):
    from tokenkit.cli import main

    out = tmp_path / "recipe-run"
    args = ["train", "tiny-single-stage", "train.steps=4", "train.batch_size=4", "train.checkpoint_every=2",
            f"train.output_dir={out}", "knobs.encoder_size=tiny", "knobs.decoder_size=tiny", "data.config.crops_per_epoch=16"]
    assert main(args) == 0
    assert latest_checkpoint(out / "checkpoints").name == "step-0000004.pt"
    model = tk.from_pretrained(out / "final")
    assert model.spec == tk.spec("titok-tiny", encoder_size="tiny", decoder_size="tiny", patch_size=4, quantizer="fsq")
    assert main([*args[:2], "train.steps=6", *args[3:]]) == 0  # continues from step 4
    assert "resumed from step 4" in capsys.readouterr().out
    assert main(["train", "tiny-single-stage", "train.stepz=3"]) == 2
    assert "unknown train option(s) stepz" in capsys.readouterr().err


def test_demo_command_writes_the_grid_and_metrics(tmp_path, capsys):
    from tokenkit.cli import main

    assert main(["demo", "--steps", "3", "--out", str(tmp_path / "demo"), "--precision", "fp32"]) == 0
    text = capsys.readouterr().out
    assert "PSNR" in text and "SSIM" in text and "codebook usage" in text
    assert text.count("precision fp32 (") == 1  # the trainer says once what it computes in, and why
    import json

    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["precision"] == "fp32" and metrics["steps"] == 3 and "torch CPU capability" in metrics["cpu"]
    assert (tmp_path / "demo" / "reconstructions.png").is_file()
    assert tk.from_pretrained(tmp_path / "demo" / "model").num_tokens == 8


def _adversarial_loss(start_step=2, lecam_weight=0.001):
    disc = tk.Part("nlayer", hidden_channels=8, num_stages=2, norm_groups=4, pool_size=4)
    return tk.build_part("loss", tk.Part("composite", terms=[
        ["rec", 1.0, tk.Part("recon")],
        ["bottleneck", 1.0, tk.Part("quantizer")],
        ["adversarial", 0.1, tk.Part("adversarial", discriminator=disc, start_step=start_step,
                                     lecam_weight=lecam_weight)]]))


def test_discriminator_step_from_its_start_step_and_exact_resume(tmp_path, images):
    torch.manual_seed(0)
    trainer = Trainer(_config(tmp_path, "gan", steps=4), images, loss_module=_adversarial_loss())
    disc = trainer.adversarial[0].discriminator
    before = {k: v.clone() for k, v in disc.state_dict().items()}
    trainer.train(stop_after=2, progress=False)
    assert all(torch.equal(before[k], v) for k, v in disc.state_dict().items())  # inactive before step 2
    trainer.save()
    trainer.train(progress=False)
    assert not all(torch.equal(before[k], v) for k, v in disc.state_dict().items())  # trained from step 2
    import json

    last = json.loads((tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()[-1])
    assert "discriminator_loss" in last
    torch.manual_seed(0)
    resumed = Trainer(_config(tmp_path, "gan", steps=4), images, loss_module=_adversarial_loss())
    resumed.output = tmp_path / "gan"
    from tokenkit.train import load_checkpoint

    resumed.load_state_dict(load_checkpoint(tmp_path / "gan" / "checkpoints" / "step-0000002.pt"))
    resumed.train(progress=False)
    a, b = trainer.loss_module.state_dict(), resumed.loss_module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # discriminator and LeCAM buffers identical
    assert all(torch.equal(x, y) for x, y in zip(_weights(trainer).values(), _weights(resumed).values()))


def test_discriminator_accumulates_micro_batches_like_one_batch(tmp_path, images):
    """grad_accum=2 with batch 4 trains the discriminator like one batch of 8: every micro-batch's hinge
    loss is back-propagated (divided by 2) and its optimizer steps once. The GroupNorm discriminator has
    no batch statistics; LeCAM is off here, because its anchors move once per micro-batch and its loss is
    a non-linear function of the micro-batch's mean logits, so with it the split is close, not exact."""
    trainers = []
    for name, batch_size, accumulation in (("one", 8, 1), ("two", 4, 2)):
        torch.manual_seed(0)
        trainer = Trainer(_config(tmp_path, name, steps=4, batch_size=batch_size, grad_accum=accumulation,
                                  precision="fp32"), images, loss_module=_adversarial_loss(0, lecam_weight=0.0))
        trainer.train(progress=False)
        trainers.append(trainer)

    def worst(a, b):
        return max((a[k] - b[k]).abs().max().item() for k in a)

    one, two = trainers
    torch.manual_seed(0)
    start = _adversarial_loss(0, lecam_weight=0.0).state_dict()
    assert worst(one.loss_module.state_dict(), start) > 1e-3  # the discriminator trained
    assert worst(one.loss_module.state_dict(), two.loss_module.state_dict()) < 1e-5
    assert worst(_weights(one), _weights(two)) < 1e-5
    assert worst(one.trained_model().state_dict(), two.trained_model().state_dict()) < 1e-5


def _stream_config(tmp_path, name, **changes):
    base = {"model": "titok-tiny", "knobs": {"quantizer": "fsq", "image_size": 8, "patch_size": 4}, "steps": 7,
            "batch_size": 2, "lr": 1e-3, "ema_decay": 0.9, "output_dir": str(tmp_path / name), "log_every": 1}
    return TrainConfig(**{**base, **changes})


@pytest.mark.parametrize(("workers", "epochs", "position"), [(0, 2, (4, 1, 1)), (2, 3, (4, 1, 2))])
def test_streaming_webdataset_resume_is_bit_exact(tmp_path, workers, epochs, position):
    """An iterable dataset (2 tar shards of 3 samples) continues exactly. One reader: 3 batches of 2
    per epoch; two DataLoader workers read one shard each and drop their odd sample: 2 batches."""
    from tokenkit.datasets.webdataset import WebDatasetConfig

    (tmp_path / "shards").mkdir()
    part = tk.Part("webdataset", **{**WebDatasetConfig.example(tmp_path / "shards").__dict__, "shuffle": 4})

    def dataset():
        return tk.build_part("dataset", part)

    full = Trainer(_stream_config(tmp_path, "full", num_workers=workers), dataset())
    full.train(progress=False)
    assert full.epoch == epochs
    first = Trainer(_stream_config(tmp_path, "split", num_workers=workers), dataset())
    first.train(stop_after=4, progress=False)
    first.save()
    second = Trainer(_stream_config(tmp_path, "split", num_workers=workers), dataset())
    assert second.resume() and (second.step, second.data.epoch, second.data.offset) == position
    second.train(progress=False)
    a, b = _weights(full), _weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_frozen_parts_stay_fixed_and_in_eval_mode(tmp_path, images):
    trainer = Trainer(_config(tmp_path, steps=3, freeze=("encoder",)), images)
    before = {k: v.clone() for k, v in _weights(trainer).items()}
    trainer.train(progress=False)
    after = _weights(trainer)
    assert all(torch.equal(before[k], after[k]) == k.startswith("encoder.") for k in before)
    model = trainer.accelerator.unwrap_model(trainer.model)
    assert model.training and not model.encoder.training
    with pytest.raises(tk.ConfigError, match="cannot freeze 'encodr'.*encoder, quantizer, decoder"):
        Trainer(_config(tmp_path, freeze=("encodr",)), images)
    with pytest.raises(tk.ConfigError, match="nothing to train"):
        Trainer(_config(tmp_path, freeze=("encoder", "quantizer", "decoder")), images)


def test_tensorboard_logging(tmp_path, images):
    pytest.importorskip("tensorboard")
    trainer = Trainer(_config(tmp_path, steps=2, log_with=("tensorboard",)), images)
    trainer.train(progress=False)
    trainer.finish()
    assert list((tmp_path / "run").rglob("events.out.tfevents.*"))
    with pytest.raises(tk.ConfigError, match="unknown tracker 'mlflow'"):
        _config(tmp_path, log_with=("mlflow",))


def test_too_little_data_is_refused(tmp_path, images):
    with pytest.raises(tk.ConfigError, match="fewer than one global batch"):
        Trainer(_config(tmp_path, batch_size=len(images) + 1), images)
    with pytest.raises(tk.ConfigError, match="lr must be a non-negative number"):
        _config(tmp_path, lr="2e-3")


def test_evaluation_is_logged_and_does_not_change_training(tmp_path, images):
    held_out = tk.data.sample_images(32, per_image=2, resize=48, seed=7)
    plain = Trainer(_config(tmp_path, "plain", steps=4), images)
    plain.train(progress=False)
    evaluated = Trainer(_config(tmp_path, "evaluated", steps=4, eval_every=2), images, eval_data=held_out)
    evaluated.train(progress=False)
    a, b = _weights(plain), _weights(evaluated)
    assert all(torch.equal(a[k], b[k]) for k in a)
    import json

    lines = [json.loads(line) for line in (tmp_path / "evaluated" / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if "eval_psnr" in line]
    assert [line["step"] for line in evals] == [2, 4] and all(line["eval_count"] == len(held_out) for line in evals)
    assert 0 < evals[-1]["eval_usage"] <= 1 and evals[-1]["eval_perplexity"] >= 1
    from tokenkit.metrics import psnr

    model = evaluated.trained_model()
    with torch.no_grad():
        expected = psnr(model.detokenize(model.tokenize(held_out)), held_out).mean().item()
    assert abs(evals[-1]["eval_psnr"] - expected) < 1e-4
    with pytest.raises(tk.ConfigError, match="no eval_data"):
        Trainer(_config(tmp_path, eval_every=2), images)


def test_generator_evaluation_uses_fixed_masks_and_leaves_the_random_state(tmp_path):
    from tokenkit.train import MaskedTokens
    from tokenkit.train.evaluate import evaluate

    generator = tk.build("maskgit-tiny")
    tokens = torch.randint(0, 256, (10, 8))
    data = [{"tokens": t, "label": i % 3, "key": str(i)} for i, t in enumerate(tokens)]
    state = torch.get_rng_state()
    first = evaluate(generator, MaskedTokens(), data, batch_size=4)
    assert torch.equal(state, torch.get_rng_state())
    assert first == evaluate(generator, MaskedTokens(), data, batch_size=4)  # the same masks every time
    assert first["count"] == 10 and 0 <= first["masked_accuracy"] <= 1 and first["masked_ce"] > 0


@pytest.mark.parametrize("workers", [0, 2])
def test_generator_training_resumes_bit_exactly(tmp_path, workers):
    """Masks and label dropout draw from the global random state; DataLoader workers must not disturb it."""
    tokens = torch.randint(0, 256, (20, 8), generator=torch.Generator().manual_seed(0))
    data = [{"tokens": t, "label": i % 4, "key": str(i)} for i, t in enumerate(tokens)]

    def trainer(name):
        config = TrainConfig(model="maskgit-tiny", steps=6, batch_size=4, lr=1e-3, ema_decay=0.9, log_every=1,
                             num_workers=workers, output_dir=str(tmp_path / name))
        return Trainer(config, data)

    full = trainer("full")
    full.train(progress=False)
    first = trainer("split")
    first.train(stop_after=3, progress=False)
    first.save()
    second = trainer("split")
    assert second.resume()
    second.train(progress=False)
    a, b = _weights(full), _weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_default_loss_weights_a_kl_like_the_official_vae_recipe():
    from tokenkit.contracts import TokenizerOutput
    from tokenkit.train.objectives import default_loss

    images = torch.zeros(1, 3, 2, 2)
    output = TokenizerOutput(images + 0.5, None, None, torch.tensor(2.0), {})
    vae, vq = default_loss(tk.build("titok-tiny", quantizer="gaussian")), default_loss(tk.build("titok-tiny"))
    assert vae(output, images, 0)[0].item() == pytest.approx(0.25 + 2e-6)
    assert vq(output, images, 0)[0].item() == pytest.approx(2.25)


def test_trainers_with_different_precisions_in_one_process(tmp_path, images):
    """accelerate fixes its precision per process; the trainer applies its own, run by run."""
    for name, precision, expected in (("a", "fp32", torch.float32), ("b", "bf16", torch.bfloat16),
                                      ("c", "fp32", torch.float32)):
        trainer = Trainer(_config(tmp_path, name, steps=1, precision=precision), images)
        seen = []
        trainer.accelerator.unwrap_model(trainer.model).encoder.register_forward_hook(
            lambda module, args, out, seen=seen: seen.append(out.dtype))
        trainer.train(progress=False)
        assert seen == [expected]
