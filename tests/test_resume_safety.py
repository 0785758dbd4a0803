"""Training never loses progress: broken `latest`, stale temporaries, foreign checkpoints."""

from __future__ import annotations

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.train import TrainConfig, Trainer


@pytest.fixture(scope="module")
def images():
    return tk.data.sample_images(32, per_image=4, resize=48, seed=0)


def _config(tmp_path, **changes):
    base = dict(model="titok-tiny", knobs={"quantizer": "fsq"}, steps=4, batch_size=4, lr=1e-3, precision="fp32",
                output_dir=str(tmp_path / "run"), log_every=1, checkpoint_every=2)
    return TrainConfig(**{**base, **changes})


def _trained(tmp_path, images):
    trainer = Trainer(_config(tmp_path), images)
    trainer.train(progress=False)  # checkpoints at steps 2 and 4, latest -> step 4
    return tmp_path / "run" / "checkpoints"


def _weights(trainer):
    return trainer.accelerator.unwrap_model(trainer.model).state_dict()


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, images):
    folder = _trained(tmp_path, images)
    (folder / "step-0000004.pt").write_bytes(b"truncated")
    trainer = Trainer(_config(tmp_path), images)
    with pytest.warns(UserWarning, match="resuming from .*step-0000002.pt"):
        assert trainer.resume()
    assert trainer.step == 2


@pytest.mark.parametrize("pointer", ["step-0000099.pt\n", b"\xff\xfe\x00", None])
def test_a_broken_pointer_falls_back_to_the_newest_checkpoint(tmp_path, images, pointer):
    folder = _trained(tmp_path, images)
    latest = folder / "latest"
    if pointer is None:
        latest.unlink()
    elif isinstance(pointer, bytes):
        latest.write_bytes(pointer)
    else:
        latest.write_text(pointer)
    trainer = Trainer(_config(tmp_path), images)
    with pytest.warns(UserWarning, match="latest"):
        assert trainer.resume()
    assert trainer.step == 4


def test_no_loadable_checkpoint_is_an_error_not_a_restart(tmp_path, images):
    folder = _trained(tmp_path, images)
    for path in folder.glob("step-*.pt"):
        path.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="refusing to start again"):
        Trainer(_config(tmp_path), images).resume()


def test_a_checkpoint_without_training_entries_is_named(tmp_path, images):
    folder = _trained(tmp_path, images)
    for path in folder.glob("step-*.pt"):
        torch.save({"model": {}}, path)
    with pytest.raises(WeightsError, match="not a tokenkit training checkpoint: it has no step"):
        Trainer(_config(tmp_path), images).resume()


def test_stale_temporaries_are_removed_on_resume(tmp_path, images):
    folder = _trained(tmp_path, images)
    stale = [folder / ".step-0000006.pt.abc123.tmp", folder / ".latest.xyz.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    trainer = Trainer(_config(tmp_path), images)
    with pytest.warns(UserWarning, match="interrupted checkpoint write"):
        assert trainer.resume()
    assert not any(path.exists() for path in stale) and trainer.step == 4


def test_a_checkpoint_of_another_composition_is_refused_naming_both(tmp_path, images):
    _trained(tmp_path, images)
    other = Trainer(_config(tmp_path, knobs={"quantizer": "fsq", "num_tokens": 4}), images)
    with pytest.raises(ConfigError, match="another composition") as err:
        other.resume()
    assert '"num_tokens": 8' in str(err.value) and '"num_tokens": 4' in str(err.value)
    assert other.step == 0


def test_resume_after_fallback_continues_exactly(tmp_path, images):
    reference = Trainer(_config(tmp_path / "a"), images)
    reference.train(progress=False)
    folder = _trained(tmp_path / "b", images)
    (folder / "latest").write_text("nonsense\n")
    resumed = Trainer(_config(tmp_path / "b"), images)
    with pytest.warns(UserWarning):
        resumed.resume()
    assert resumed.step == 4
    for key, value in _weights(reference).items():
        assert torch.equal(value, _weights(resumed)[key]), key
