"""A NaN / Inf input or loss never reaches the weights: ``on_nonfinite`` stops the run with a clear error
(default) or drops the step, and all processes decide together."""

from __future__ import annotations

import copy
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import TokenkitError
from tokenkit.train import BatchStream, NonFiniteLossError, TrainConfig, Trainer, load_checkpoint, reconstruction_loss

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker
from _helpers import nested_equal

BATCH = 4


@pytest.fixture(scope="module")
def images():
    return tk.data.sample_images(8, per_image=4, resize=16, seed=0)  # 24 crops of 8x8: 6 batches of 4


def _config(tmp_path, **changes):
    return TrainConfig(**{**dict(model="titok-tiny", knobs={"quantizer": "fsq", "image_size": 8, "patch_size": 4},
                                 steps=6, batch_size=BATCH, lr=1e-3, ema_decay=0.9, precision="fp32", log_every=1,
                                 output_dir=str(tmp_path / "run")), **changes})


def _poisoned(images, step):
    """``images`` with one NaN pixel in the first image of the (0-based) step ``step``."""
    data = images.clone()
    data[BatchStream(data, BATCH, seed=0).order(0)[step * BATCH], 0, 0, 0] = float("nan")
    return data


def _gan():
    torch.manual_seed(0)
    disc = tk.Part("nlayer", hidden_channels=4, num_stages=1, norm_groups=4, pool_size=2)
    return tk.build_part("loss", tk.Part("composite", terms=[
        ["rec", 1.0, tk.Part("recon")], ["bottleneck", 1.0, tk.Part("quantizer")],
        ["adversarial", 0.1, tk.Part("adversarial", discriminator=disc, start_step=0)]]))


def _state(trainer):
    """A copy of everything a step updates, the learning-rate schedules aside."""
    state = trainer.state_dict()
    return copy.deepcopy({**{k: state[k] for k in ("model", "ema", "loss_module")},
                          **{k: state[k] and state[k]["state"] for k in ("optimizer", "d_optimizer")}})



def _nan_loss_at(bad_step):
    """The default loss, with a NaN mean squared error at the (0-based) step ``bad_step``."""
    def loss_fn(output, images, step, targets=None):
        return reconstruction_loss(output, images * float("nan") if step == bad_step else images, step)
    return loss_fn


def test_a_nan_loss_stops_before_the_step_naming_the_step_terms_and_checkpoint(tmp_path, images):
    trainer = Trainer(_config(tmp_path, checkpoint_every=2), images, loss_fn=_nan_loss_at(3))
    trainer.train(stop_after=3, progress=False)
    before = _state(trainer)
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.train(progress=False)
    message = str(caught.value)
    assert isinstance(caught.value, TokenkitError) and isinstance(caught.value, RuntimeError)
    assert message.startswith("step 4: the loss is NaN / Inf (terms: mse)")  # 1-based, as in metrics.jsonl
    assert f"the last good checkpoint is {tmp_path / 'run' / 'checkpoints' / 'step-0000002.pt'}" in message
    assert "on_nonfinite: skip" in message
    assert trainer.step == 3 and nested_equal(_state(trainer), before)  # weights, EMA and optimizer untouched


def test_nan_images_stop_with_the_same_error_not_a_contract_error(tmp_path, images):
    trainer = Trainer(_config(tmp_path), _poisoned(images, 1), loss_module=_gan())
    trainer.train(stop_after=1, progress=False)
    before = _state(trainer)
    with pytest.raises(NonFiniteLossError, match=r"^step 2: the input batch holds NaN / Inf values\. ") as caught:
        trainer.train(progress=False)
    assert "no checkpoint was written yet" in str(caught.value)
    assert nested_equal(_state(trainer), before)  # model, EMA, optimizers, discriminator and LeCAM averages


def test_skip_drops_the_whole_step_warns_counts_and_goes_on(tmp_path, images):
    trainer = Trainer(_config(tmp_path, on_nonfinite="skip"), _poisoned(images, 2), loss_module=_gan())
    trainer.train(stop_after=2, progress=False)
    before = _state(trainer)
    with pytest.warns(RuntimeWarning, match="step 3: the input batch holds NaN / Inf values; on_nonfinite=skip") \
            as caught:
        trainer.train(stop_after=1, progress=False)
    assert len(caught) == 1
    assert trainer.step == 3 and trainer.data.offset == 3 and nested_equal(_state(trainer), before)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no other step is dropped
        last = trainer.train(progress=False)
    assert all(torch.isfinite(v).all() for v in trainer.state_dict()["model"].values())
    assert not nested_equal(_state(trainer)["loss_module"], before["loss_module"])  # the discriminator trained on
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["skipped_nonfinite"] for line in lines] == [0, 0, 1, 1, 1, 1] and last["skipped_nonfinite"] == 1


def test_a_run_with_a_skipped_step_resumes_exactly(tmp_path, images):
    data = _poisoned(images, 2)
    full = Trainer(_config(tmp_path / "full", on_nonfinite="skip"), data, loss_fn=_nan_loss_at(4))
    with pytest.warns(RuntimeWarning):
        full.train(progress=False)
    assert full.skipped_nonfinite == 2
    first = Trainer(_config(tmp_path / "split", on_nonfinite="skip"), data, loss_fn=_nan_loss_at(4))
    with pytest.warns(RuntimeWarning):
        first.train(stop_after=4, progress=False)
    first.save()
    second = Trainer(_config(tmp_path / "split", on_nonfinite="skip"), data, loss_fn=_nan_loss_at(4))
    assert second.resume() and second.skipped_nonfinite == 1
    with pytest.warns(RuntimeWarning, match="step 5: the loss is NaN / Inf"):
        second.train(progress=False)
    assert second.skipped_nonfinite == 2 and nested_equal(_state(second), _state(full))


def test_two_processes_agree_to_stop_or_skip_when_one_sees_nan(tmp_path):
    """Process 1's batch holds a NaN at the second of three steps: both processes stop there (naming
    process 1), or both drop the step and train on, like one process with the global batch."""
    runs = worker.launch(tmp_path / "ddp", "nan-stop", "nan-skip")
    checkpoint = runs / "nan-stop" / "checkpoints" / "step-0000001.pt"
    for rank in (0, 1):
        message = (runs / "nan-stop" / f"error-{rank}.txt").read_text()
        assert message.startswith("step 2: process 1: the input batch holds NaN / Inf values")
        assert str(checkpoint) in message
        stopped = torch.load(runs / "nan-stop" / f"rank-{rank}.pt")
        assert stopped["step"] == 1 and nested_equal(stopped["model"], load_checkpoint(checkpoint)["model"])

    ranks = [torch.load(runs / "nan-skip" / f"rank-{rank}.pt") for rank in (0, 1)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3 and nested_equal(ranks[0]["model"], ranks[1]["model"])
    single = worker.build("nan-skip", str(tmp_path / "single"), batch_size=8)
    with pytest.warns(RuntimeWarning, match="step 2: the input batch"):
        single.train(progress=False)
    ours = single.accelerator.unwrap_model(single.model).state_dict()
    assert all(torch.isfinite(v).all() for v in ours.values())
    assert max((ours[k] - ranks[0]["model"][k]).abs().max().item() for k in ours) < 1e-5
    lines = (runs / "nan-skip" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["skipped_nonfinite"] for line in lines] == [0, 1, 1]
