"""How this run was launched: one process or several (``torchrun`` / ``accelerate launch``)."""

from __future__ import annotations

import os

import torch


def multi_process_without_accelerator() -> bool:
    """Launched as several processes (``torchrun``) on a machine without GPU: accelerate then needs
    ``cpu=True`` to set up gloo (``accelerate launch --cpu`` says so itself)."""
    accelerators = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not accelerators
