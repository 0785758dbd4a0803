"""Safe reading and atomic writing of weight files.

Pickle-based files (``.bin``, ``.pt``, ``.pth``) are read with
``torch.load(weights_only=True)``: only tensors and plain containers are
unpickled, so a checkpoint can never execute code. Safetensors files are
read with ``safetensors``.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from tokenkit.errors import WeightsError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
SAFETENSORS_SUFFIXES = (".safetensors",)
WEIGHT_SUFFIXES = PICKLE_SUFFIXES + SAFETENSORS_SUFFIXES


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    """A flat ``{name: tensor}`` dict from a checkpoint (``state_dict``/``model`` wrappers are unwrapped)."""
    if isinstance(obj, Mapping) and len(obj) == 1 and next(iter(obj)) in ("state_dict", "model", "module"):
        obj = next(iter(obj.values()))
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path} is not a flat state dict of tensors; offending entries: {bad[:5]}")
    return dict(obj)


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a pickle file (``.bin``/``.pt``/``.pth``/``.ckpt``), on CPU.

    Raises:
        WeightsError: Missing file, unknown suffix, a pickle that would need to
            run code (refused, nothing is executed), or a corrupt/truncated file.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "checkpoint.pt"
        ...     torch.save({"state_dict": {"weight": torch.ones(3, 2)}}, path)  # a wrapped state dict
        ...     state = load_state_dict(path)
        >>> {name: tuple(tensor.shape) for name, tensor in state.items()}
        {'weight': (3, 2)}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "evil.pt"
        ...     torch.save({"weight": torch.ones(1), "code": print}, path)  # a function would run when unpickled
        ...     load_state_dict(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: refused to load .../evil.pt: it contains Python objects other than tensors, ...
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as err:
            raise WeightsError(f"{path} is not a readable safetensors file (corrupt or truncated?): {err}") from None
    if suffix not in PICKLE_SUFFIXES:
        raise WeightsError(f"cannot read {path}: expected one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise WeightsError(
            f"refused to load {path}: it contains Python objects other than tensors, which would run code when "
            f"unpickled (tokenkit loads with weights_only=True). Details: {str(err).splitlines()[0]}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as err:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated?): {err}") from None
    return _unwrap(obj, path)


def read_safetensors_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata in a safetensors header (``{}`` if none).

    Raises:
        WeightsError: The file is missing or not a safetensors file.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "model.safetensors"
        ...     save_safetensors({"weight": torch.zeros(2)}, path, metadata={"source": "example"})
        ...     read_safetensors_metadata(path)
        {'source': 'example'}
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as err:
        raise WeightsError(f"{path} is not a readable safetensors file: {err}") from None


def atomic_write(path: Path, write: Callable[[str], object]) -> None:
    """Call ``write(temporary_path)`` for a temporary file next to ``path``, then rename it over ``path``.

    A crash or interrupt leaves ``path`` as it was (and no temporary file behind).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "notes.txt"
        ...     atomic_write(path, lambda temporary: Path(temporary).write_text("first"))
        ...     def fail(temporary):
        ...         Path(temporary).write_text("half")
        ...         raise OSError("disk full")  # fails half-way
        ...     try:
        ...         atomic_write(path, fail)
        ...     except OSError:
        ...         pass
        ...     path.read_text(), [p.name for p in Path(tmp).iterdir()]  # unchanged, no temporary left
        ('first', ['notes.txt'])
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike,
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write ``state_dict`` to ``path`` atomically (a crash leaves the old file, never a partial one).

    Tensors are detached, moved to the CPU and made contiguous first; ``metadata`` (strings) goes
    into the safetensors header.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "linear.safetensors"
        ...     save_safetensors(torch.nn.Linear(2, 3).state_dict(), path, metadata={"format": "pt"})
        ...     state = load_state_dict(path)
        >>> sorted((name, tuple(tensor.shape)) for name, tensor in state.items())
        [('bias', (3,)), ('weight', (3, 2))]
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write(Path(path), lambda tmp: save_file(tensors, tmp, metadata=dict(metadata or {})))


def save_json(data: object, path: str | os.PathLike) -> None:
    """Write JSON to ``path`` atomically (indented, with a final newline).

    Examples:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     save_json({"steps": 100, "model": "titok-tiny"}, Path(tmp) / "config.json")
        ...     json.loads((Path(tmp) / "config.json").read_text())
        {'steps': 100, 'model': 'titok-tiny'}
    """
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))
