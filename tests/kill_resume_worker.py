"""Worker of tests/test_kill_resume_soak.py: ``kill_resume_worker.py OUTPUT_DIR [PHASE:STEP]``.

Trains a tiny tokenizer with an adversarial term into ``OUTPUT_DIR`` (resuming from its checkpoints;
one checkpoint per step) to the end. With a kill point it prints ``READY`` and waits for its SIGKILL
when it gets there:

- ``step:S``: in step ``S`` (1-based), after the forward pass, before the optimizer step;
- ``write:S``: in the checkpoint write of step ``S``, half of the temporary file written;
- ``latest:S``: step ``S``'s file in place, ``latest`` not yet pointing at it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import tokenkit as tk
from tokenkit.train import TrainConfig, Trainer, checkpoint

STEPS = 8


def trainer(output_dir: str) -> Trainer:
    """titok-tiny (VQ: it imports fastest; 8x8 crops, batch 4: 6 batches per epoch) with an adversarial term
    from step 2."""
    config = TrainConfig(model="titok-tiny", knobs={"quantizer": "vq", "image_size": 8, "patch_size": 4},
                         steps=STEPS, batch_size=4, lr=1e-3, ema_decay=0.9, precision="fp32", log_every=1,
                         checkpoint_every=1, output_dir=output_dir)
    torch.manual_seed(0)
    disc = tk.Part("nlayer", hidden_channels=4, num_stages=1, norm_groups=4, pool_size=2)
    loss = tk.build_part("loss", tk.Part("composite", terms=[
        ["rec", 1.0, tk.Part("recon")], ["bottleneck", 1.0, tk.Part("quantizer")],
        ["adversarial", 0.1, tk.Part("adversarial", discriminator=disc, start_step=2)]]))
    return Trainer(config, tk.data.sample_images(8, per_image=4, resize=16, seed=0), loss_module=loss)


def _ready() -> None:
    print("READY", flush=True)
    time.sleep(600)


def _kill_point(run: Trainer, phase: str, step: int) -> None:
    """Wait for the kill at ``phase`` of ``step``."""
    if phase == "step":
        run.objective.register_forward_hook(lambda *_: _ready() if run.step + 1 == step else None)
        return
    write, written = checkpoint.atomic_write, []

    def atomic_write(path: Path, save) -> None:
        if phase == "latest" and path.name == checkpoint.LATEST and written[-1:] == [f"step-{step:07d}.pt"]:
            _ready()
        if phase == "write" and path.name == f"step-{step:07d}.pt":
            def half(tmp: str) -> None:
                save(tmp)
                with open(tmp, "r+b") as f:
                    f.truncate(Path(tmp).stat().st_size // 2)
                _ready()

            write(path, half)
        written.append(path.name)
        write(path, save)

    checkpoint.atomic_write = atomic_write


if __name__ == "__main__":
    run = trainer(sys.argv[1])
    if len(sys.argv) > 2:
        phase, step = sys.argv[2].split(":")
        _kill_point(run, phase, int(step))
    run.resume()
    print(f"STARTED {run.step}", flush=True)
    run.train(progress=False)
