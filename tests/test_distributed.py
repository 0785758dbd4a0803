"""Two CPU processes (gloo, launched by torchrun) train like one process with the doubled batch."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from tokenkit.train import Trainer, load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
import distributed_worker as worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_with_the_global_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), str(Path(worker.__file__)), str(tmp_path / "ddp")]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "step-0000006.pt")
    assert state["data_per_process"] == [{"epoch": 1, "offset": 3}] * 2  # 24 images = 3 global batches of 8

    single = Trainer(worker.config(str(tmp_path / "single"), batch_size=8), worker.images())
    single.train(progress=False)
    ours = single.accelerator.unwrap_model(single.model).state_dict()
    assert ours.keys() == state["model"].keys()
    worst = max((ours[k].float() - state["model"][k].float()).abs().max().item() for k in ours)
    moved = max((ours[k].float() - v.float()).abs().max().item()
                for k, v in load_checkpoint(tmp_path / "ddp" / "checkpoints" / "step-0000003.pt")["model"].items())
    assert worst < 1e-5 < moved  # equal within float noise, while 3 more steps changed the weights visibly
    ema = single.trained_model().state_dict()
    assert all(torch.allclose(ema[k].float(), state["ema"][f"shadow.{k}"].float(), atol=1e-5) for k in ema)
