"""Two CPU processes (gloo, launched by torchrun) train like one process with the doubled batch,
discriminators of adversarial loss terms included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from tokenkit.train import Trainer, load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One torchrun launch for all scenarios of this file (start-up dominates their cost)."""
    return worker.launch(tmp_path_factory.mktemp("ddp"), "plain", "gan", "gan-lecam")


def _worst(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def _single(scenario: str, tmp_path: Path) -> Trainer:
    trainer = worker.build(scenario, str(tmp_path / scenario), batch_size=8)
    trainer.train(progress=False)
    return trainer


def test_two_gloo_processes_match_one_process_with_the_global_batch(runs, tmp_path):
    state = load_checkpoint(runs / "plain" / "checkpoints" / "step-0000006.pt")
    assert state["data_per_process"] == [{"epoch": 1, "offset": 3}] * 2  # 24 images = 3 global batches of 8

    single = _single("plain", tmp_path)
    ours = single.accelerator.unwrap_model(single.model).state_dict()
    moved = _worst(ours, load_checkpoint(runs / "plain" / "checkpoints" / "step-0000003.pt")["model"])
    assert _worst(ours, state["model"]) < 1e-5 < moved  # equal within float noise; 3 more steps moved the weights
    ema = single.trained_model().state_dict()
    assert _worst(ema, {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}) < 1e-5


def test_two_processes_train_the_discriminator_like_one_process_with_the_global_batch(runs, tmp_path):
    """The discriminator is one DDP module: its gradients are averaged, the checkpoint holds its plain
    (unwrapped) state, and it follows the one-process run (hinge loss, GroupNorm: no batch statistics)."""
    state = load_checkpoint(runs / "gan" / "checkpoints" / "step-0000006.pt")
    single = _single("gan", tmp_path)
    ours = single.accelerator.unwrap_model(single.model).state_dict()
    assert _worst(ours, state["model"]) < 1e-5
    ema = single.trained_model().state_dict()
    assert _worst(ema, {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}) < 1e-5
    disc = single.loss_module.state_dict()
    assert not any(k.startswith("module.") or ".module." in k for k in state["loss_module"])
    assert _worst(disc, state["loss_module"]) < 1e-5
    assert _worst(disc, worker.adversarial_loss(0.0).state_dict()) > 1e-3  # it trained (from step 0)
    assert _worst(single.d_optimizer.state_dict()["state"][0], state["d_optimizer"]["state"][0]) < 1e-5


def test_with_lecam_every_process_holds_the_same_discriminator(runs):
    """LeCAM's anchors average the main process's batch means (DDP broadcasts buffers), and its loss is
    taken per process: close to, not exactly, the one-process run. The discriminators still agree
    exactly across processes (before, each process trained its own)."""
    ranks = [torch.load(runs / "gan-lecam" / f"rank-{r}.pt") for r in (0, 1)]
    params = [k for k in ranks[0]["loss_module"] if "ema_" not in k]
    assert all(torch.equal(ranks[0]["loss_module"][k], ranks[1]["loss_module"][k]) for k in params)
    assert all(torch.equal(ranks[0]["model"][k], ranks[1]["model"][k]) for k in ranks[0]["model"])
    saved = load_checkpoint(runs / "gan-lecam" / "checkpoints" / "step-0000006.pt")["loss_module"]
    assert all(torch.equal(saved[k], ranks[0]["loss_module"][k]) for k in saved)  # the main process's state
    assert saved["terms.adversarial.lecam.ema_real_logits_mean"].abs().item() > 0
