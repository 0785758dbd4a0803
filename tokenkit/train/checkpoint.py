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


# Not accelerate.save_state: it writes checkpoint_N in place, prunes first, resumes from the highest N without fallback.
def save_checkpoint(state: dict[str, Any], folder: str | os.PathLike, step: int, keep: int = 2) -> Path:
    """Write ``state`` as ``folder/step-XXXXXXX.pt``, then point ``folder/latest`` at it; keep the newest ``keep``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tokenkit.train.checkpoint import REQUIRED_KEYS, save_checkpoint
        >>> folder = tempfile.TemporaryDirectory()
        >>> state = dict.fromkeys(REQUIRED_KEYS, {})
        >>> for step in (1, 2, 3):
        ...     path = save_checkpoint({**state, "step": step}, folder.name, step, keep=2)
        >>> path.name, sorted(p.name for p in Path(folder.name).iterdir())
        ('step-0000003.pt', ['latest', 'step-0000002.pt', 'step-0000003.pt'])
        >>> (Path(folder.name) / "latest").read_text().strip()
        'step-0000003.pt'
        >>> folder.cleanup()
    """
    folder = Path(folder)
    path = folder / f"step-{step:07d}.pt"
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    atomic_write(folder / LATEST, lambda tmp: Path(tmp).write_text(path.name + "\n"))
    for old in sorted(folder.glob("step-*.pt"))[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in ``folder`` (``None`` if there is none).

    Examples:
        >>> import tempfile
        >>> from tokenkit.train.checkpoint import REQUIRED_KEYS, latest_checkpoint, save_checkpoint
        >>> folder = tempfile.TemporaryDirectory()
        >>> latest_checkpoint(folder.name) is None
        True
        >>> _ = save_checkpoint({**dict.fromkeys(REQUIRED_KEYS, {}), "step": 5}, folder.name, 5)
        >>> latest_checkpoint(folder.name).name
        'step-0000005.pt'
        >>> folder.cleanup()
    """
    pointer = Path(folder) / LATEST
    if not pointer.is_file():
        return None
    path = Path(folder) / pointer.read_text().strip()
    return path if path.is_file() else None


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by [`save_checkpoint`][tokenkit.train.checkpoint.save_checkpoint].

    Raises:
        WeightsError: Unreadable, corrupt or unsafe file, or not a training checkpoint (entries missing).

    Examples:
        >>> import tempfile
        >>> import torch
        >>> from pathlib import Path
        >>> from tokenkit.train.checkpoint import REQUIRED_KEYS, load_checkpoint, save_checkpoint
        >>> folder = tempfile.TemporaryDirectory()
        >>> state = {**dict.fromkeys(REQUIRED_KEYS, {}), "step": 7, "model": {"w": torch.ones(2)}}
        >>> load_checkpoint(save_checkpoint(state, folder.name, 7))["model"]
        {'w': tensor([1., 1.])}
        >>> torch.save({"w": torch.ones(2)}, Path(folder.name) / "weights.pt")
        >>> load_checkpoint(Path(folder.name) / "weights.pt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: ...weights.pt is not a tokenkit training checkpoint: it has no step, model, ...
        >>> folder.cleanup()
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
    """Temporary files of interrupted checkpoint writes in ``folder`` (``.step-*.pt.*.tmp``, ``.latest.*.tmp``).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tokenkit.train.checkpoint import stale_temporaries
        >>> folder = tempfile.TemporaryDirectory()
        >>> _ = (Path(folder.name) / ".step-0000002.pt.k3j9x.tmp").write_bytes(b"half a checkpoint")
        >>> _ = (Path(folder.name) / "notes.txt").write_text("kept")
        >>> [path.name for path in stale_temporaries(folder.name)]
        ['.step-0000002.pt.k3j9x.tmp']
        >>> folder.cleanup()
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted([*folder.glob(".step-*.pt.*.tmp"), *folder.glob(f".{LATEST}.*.tmp")])


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete [`stale_temporaries`][tokenkit.train.checkpoint.stale_temporaries]; returns what was deleted.

    Call it only where no other process is writing checkpoints into ``folder``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tokenkit.train.checkpoint import remove_stale_temporaries, stale_temporaries
        >>> folder = tempfile.TemporaryDirectory()
        >>> _ = (Path(folder.name) / ".latest.u7w2q.tmp").write_text("step-0000002.pt")
        >>> [path.name for path in remove_stale_temporaries(folder.name)], stale_temporaries(folder.name)
        (['.latest.u7w2q.tmp'], [])
        >>> folder.cleanup()
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

    Examples:
        >>> import tempfile
        >>> import warnings
        >>> from pathlib import Path
        >>> from tokenkit.train.checkpoint import REQUIRED_KEYS, load_latest, save_checkpoint
        >>> folder = tempfile.TemporaryDirectory()
        >>> load_latest(folder.name) is None
        True
        >>> for step in (1, 2):
        ...     _ = save_checkpoint({**dict.fromkeys(REQUIRED_KEYS, {}), "step": step}, folder.name, step)
        >>> load_latest(folder.name)[1]["step"]
        2
        >>> _ = (Path(folder.name) / "step-0000002.pt").write_bytes(b"cut short")  # a corrupt newest checkpoint
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     path, state = load_latest(folder.name)
        >>> path.name, state["step"], "step-0000002.pt does not load" in str(caught[0].message)
        ('step-0000001.pt', 1, True)
        >>> folder.cleanup()
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
