"""Training checkpoints: atomic writes and safe reads.

A checkpoint is one file ``checkpoints/step-XXXXXXX.pt`` holding every state a
run needs to continue exactly (model, EMA, optimizer, scheduler, RNG, data
position); ``checkpoints/latest`` names the newest complete one. Both are
written to a temporary file first and renamed, so an interrupted write never
replaces the last good checkpoint. Reading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tokenkit.errors import WeightsError
from tokenkit.weights.io import atomic_write

LATEST = "latest"


def save_checkpoint(state: dict[str, Any], folder: str | os.PathLike, step: int, keep: int = 2) -> Path:
    """Write ``state`` as ``folder/step-XXXXXXX.pt``, then point ``folder/latest`` at it; keep the newest ``keep``."""
    folder = Path(folder)
    path = folder / f"step-{step:07d}.pt"
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write(folder / LATEST, lambda tmp: Path(tmp).write_text(path.name + "\n"))
    for old in sorted(folder.glob("step-*.pt"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``folder`` (``None`` if there is none)."""
    pointer = Path(folder) / LATEST
    if not pointer.is_file():
        return None
    path = Path(folder) / pointer.read_text().strip()
    return path if path.is_file() else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by [`save_checkpoint`][tokenkit.train.checkpoint.save_checkpoint].

    Raises:
        WeightsError: Unreadable, corrupt or unsafe file.
    """
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise WeightsError(f"cannot read checkpoint {path}: {err}") from None
