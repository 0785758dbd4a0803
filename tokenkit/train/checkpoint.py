"""Training checkpoints: atomic writes and safe reads.

A checkpoint is one file ``checkpoints/step-XXXXXXX.pt`` holding every state a
run needs to continue exactly (model, EMA, optimizer, scheduler, RNG, data
position); ``checkpoints/latest`` names the newest complete one. Both are
written to a temporary file first and renamed, so an interrupted write never
replaces the last good checkpoint (it can leave a hidden temporary file, which
[`remove_stale_temporaries`][tokenkit.train.checkpoint.remove_stale_temporaries]
deletes when a run starts). Reading uses ``torch.load(weights_only=True)``;
[`load_latest`][tokenkit.train.checkpoint.load_latest] falls back to the newest
loadable checkpoint when ``latest`` is broken, so progress is never lost silently.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from tokenkit.errors import WeightsError
from tokenkit.weights.io import atomic_write

LATEST = "latest"
REQUIRED_KEYS = ("step", "model", "optimizer", "scheduler", "torch_rng", "python_rng", "data")
"""Entries every training checkpoint holds."""


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
        WeightsError: Unreadable, corrupt or unsafe file, or not a training checkpoint (entries missing).
    """
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - reported with the path
        raise WeightsError(f"cannot read checkpoint {path}: {err}") from None
    missing = [key for key in REQUIRED_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise WeightsError(f"{path} is not a tokenkit training checkpoint: it has no {', '.join(missing)}")
    return state


def stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Temporary files of interrupted checkpoint writes in ``folder`` (``.step-*.pt.*.tmp``, ``.latest.*.tmp``)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted([*folder.glob(".step-*.pt.*.tmp"), *folder.glob(f".{LATEST}.*.tmp")])


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete [`stale_temporaries`][tokenkit.train.checkpoint.stale_temporaries]; returns what was deleted.

    Call it only where no other process is writing checkpoints into ``folder``.
    """
    removed = stale_temporaries(folder)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def load_latest(folder: str | os.PathLike) -> tuple[Path, dict[str, Any]] | None:
    """The newest loadable checkpoint in ``folder`` and its state, or ``None`` if there is no checkpoint.

    ``latest`` is tried first. If it is missing, unreadable, names a deleted file or a file that
    does not load, the other ``step-*.pt`` files are tried from the newest, and a warning says
    what was wrong and which checkpoint is used instead.

    Raises:
        WeightsError: There are checkpoints but none loads (each file and its error named).
    """
    folder = Path(folder)
    steps = sorted(folder.glob("step-*.pt"), reverse=True)
    pointer, problem, named = folder / LATEST, None, None
    if pointer.is_file():
        try:
            named = folder / pointer.read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            problem = f"{pointer} is unreadable ({err})"
        else:
            if not named.name.startswith("step-") or not named.is_file():
                problem, named = f"{pointer} names {named.name!r}, which does not exist", None
    elif steps:
        problem = f"{pointer} is missing"
    candidates = ([named] if named is not None else []) + [p for p in steps if p != named]
    failures = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except WeightsError as err:
            failures.append(str(err))
            problem = problem or f"{path.name} does not load"
            continue
        if problem is not None:
            warnings.warn(f"{problem}; resuming from {path} (the newest checkpoint that loads)"
                          + (f"; skipped: {'; '.join(failures)}" if failures else ""), UserWarning, stacklevel=2)
        return path, state
    if failures:
        raise WeightsError(f"no checkpoint in {folder} loads; refusing to start again from step 0 "
                           f"(move the folder away to do so): " + "; ".join(failures))
    return None
