"""Worker of the two-process tests (tests/test_distributed.py, tests/test_nonfinite_training.py).

``torchrun --nproc_per_node 2 distributed_worker.py OUTPUT_DIR SCENARIO [SCENARIO ...]`` trains each
scenario into ``OUTPUT_DIR/SCENARIO`` with batch 4 per process, then writes ``rank-R.pt`` (process
``R``'s model and loss-part state) there; a run that stops on a non-finite loss also writes its
message to ``error-R.txt``. ``launch`` runs it from a test.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

import tokenkit as tk
from tokenkit.train import BatchStream, NonFiniteLossError, TrainConfig, Trainer

NAN_STEP = 1
"""The (0-based) step at which process 1's batch holds a NaN in the ``nan-*`` scenarios (the second of three)."""


def config(output_dir: str, batch_size: int, **changes) -> TrainConfig:
    """The run both sides train: titok-tiny with FSQ on bundled crops, 6 steps, accumulation 1.

    fp32 on purpose: the comparison is within float noise, and ``precision="auto"`` picks bf16 on
    CPUs with native bf16 (AVX-512-bf16 / AMX), where one rounding differs by about 5e-4."""
    return TrainConfig(**{**dict(model="titok-tiny", knobs={"quantizer": "fsq"}, steps=6, batch_size=batch_size,
                                 lr=1e-3, ema_decay=0.9, output_dir=output_dir, log_every=1, checkpoint_every=3,
                                 precision="fp32"), **changes})


def images() -> torch.Tensor:
    """24 crops of 32x32: three global batches of 8."""
    return tk.data.sample_images(32, per_image=4, resize=48, seed=0)


def poisoned_images() -> torch.Tensor:
    """``images()`` with one NaN pixel in an image that process 1 of 2 (batch 4)
    reads at step ``NAN_STEP``; one process with batch 8 reads it at the same step."""
    data = images()
    order = BatchStream(data, 4, seed=0, rank=1, world=2).order(0)
    first_of_process_1 = order[(NAN_STEP * 2 + 1) * 4]  # global batch k holds processes 0, 1 in turn
    data[first_of_process_1, 0, 0, 0] = float("nan")
    return data


def adversarial_loss(lecam_weight: float) -> torch.nn.Module:
    """Reconstruction + VQ + an adversarial term active from step 0 (a GroupNorm discriminator), seeded."""
    torch.manual_seed(0)
    disc = tk.Part("nlayer", hidden_channels=8, num_stages=2, norm_groups=4, pool_size=4)
    return tk.build_part("loss", tk.Part("composite", terms=[
        ["rec", 1.0, tk.Part("recon")],
        ["bottleneck", 1.0, tk.Part("quantizer")],
        ["adversarial", 0.1, tk.Part("adversarial", discriminator=disc, start_step=0, lecam_weight=lecam_weight)]]))


def build(scenario: str, output_dir: str, batch_size: int, **changes) -> Trainer:
    """The trainer of a scenario (the tests build the same in one process with batch 8).

    ``plain``: reconstruction; ``gan``: with an adversarial term (no LeCAM, so that the split is
    exact); ``gan-lecam``: the same with LeCAM; ``nan-skip`` / ``nan-stop``: NaN input on process 1
    at ``NAN_STEP``, ``on_nonfinite`` skip / stop, 3 steps (one epoch), a checkpoint every step.
    """
    if scenario == "plain":
        return Trainer(config(output_dir, batch_size, **changes), images())
    if scenario in ("gan", "gan-lecam"):
        loss = adversarial_loss(0.001 if scenario == "gan-lecam" else 0.0)
        return Trainer(config(output_dir, batch_size, **changes), images(), loss_module=loss)
    if scenario in ("nan-skip", "nan-stop"):
        return Trainer(config(output_dir, batch_size, on_nonfinite=scenario[4:], steps=3, checkpoint_every=1,
                              **changes),
                       poisoned_images())
    raise ValueError(f"unknown scenario {scenario!r}")


def launch(output_dir: Path, *scenarios: str) -> Path:
    """Run the scenarios in two gloo processes (torchrun); returns ``output_dir``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(port), __file__, str(output_dir), *scenarios]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return output_dir


if __name__ == "__main__":
    root = Path(sys.argv[1])
    for name in sys.argv[2:]:
        trainer = build(name, str(root / name), batch_size=4)
        assert trainer.accelerator.num_processes == 2, trainer.accelerator.distributed_type
        rank = trainer.accelerator.process_index
        (root / name).mkdir(parents=True, exist_ok=True)
        try:
            trainer.train(progress=False)
            trainer.save()
        except NonFiniteLossError as err:
            (root / name / f"error-{rank}.txt").write_text(str(err))
        torch.save({"model": trainer.accelerator.unwrap_model(trainer.model).state_dict(), "step": trainer.step,
                    "loss_module": None if trainer.loss_module is None else trainer.loss_module.state_dict()},
                   root / name / f"rank-{rank}.pt")
