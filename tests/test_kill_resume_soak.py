"""Soak: a run SIGKILLed again and again (in a step, in a checkpoint write, between the checkpoint and
its ``latest`` pointer) and resumed each time ends bit-identical to an uninterrupted run, with no
temporary files left behind."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import torch

from tokenkit.train import load_checkpoint
from tokenkit.train.checkpoint import stale_temporaries

WORKER = Path(__file__).parent / "kill_resume_worker.py"
sys.path.insert(0, str(WORKER.parent))
import kill_resume_worker as worker
from _helpers import nested_equal

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # the same arithmetic in every run


def _start(output_dir: Path, *point: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(WORKER), str(output_dir), *point], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=open(output_dir.parent / f"{output_dir.name}.log", "a"))


def _kill_at(output_dir: Path, point: str) -> None:
    """Run until the worker reports it is at ``point``, then SIGKILL it."""
    process = _start(output_dir, point)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.strip())
            if lines[-1] == "READY":
                process.send_signal(signal.SIGKILL)
                break
    finally:
        watchdog.cancel()
    process.wait()
    log = (output_dir.parent / f"{output_dir.name}.log").read_text()
    assert process.returncode == -signal.SIGKILL and "READY" in lines, (point, lines, log[-3000:])


def _state(output_dir: Path) -> dict:
    state = load_checkpoint(output_dir / "checkpoints" / f"step-{worker.STEPS:07d}.pt")
    del state["config"]  # it names the output folder
    return state



def test_killed_and_resumed_runs_end_bit_identical_without_temporaries(tmp_path):
    reference = _start(tmp_path / "reference")  # meanwhile, on the other core
    rng = random.Random(0)  # which steps, and in which order the three phases come
    steps = sorted(rng.sample(range(2, worker.STEPS + 1), 3))
    phases = rng.sample(["write", "latest", "step"], 3)
    folder = tmp_path / "killed" / "checkpoints"
    for phase, step in zip(phases, steps):
        _kill_at(tmp_path / "killed", f"{phase}:{step}")
        if phase == "write":  # the kill left a half-written temporary file, removed when the run resumes
            assert stale_temporaries(folder)
    finish = _start(tmp_path / "killed")
    assert finish.wait(timeout=120) == 0 and reference.wait(timeout=120) == 0, (
        (tmp_path / "killed.log").read_text()[-3000:] + (tmp_path / "reference.log").read_text()[-3000:])
    assert "left by an interrupted checkpoint write" in (tmp_path / "killed.log").read_text()

    assert not stale_temporaries(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["latest", "step-0000007.pt", "step-0000008.pt"]
    ours, theirs = _state(tmp_path / "killed"), _state(tmp_path / "reference")
    assert ours.keys() == theirs.keys() and {"model", "ema", "optimizer", "loss_module", "d_optimizer"} <= ours.keys()
    assert [k for k in ours if not nested_equal(ours[k], theirs[k])] == []  # weights, EMA, optimizers, RNG, data position
