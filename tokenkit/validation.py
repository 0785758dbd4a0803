"""Small validators shared by the part configs and the public entry points."""

from __future__ import annotations

from typing import Any

import torch

from tokenkit.errors import ConfigError


def check_positive_ints(config: Any, *names: str, optional: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` unless each named attribute is a positive ``int``.

    Args:
        config: The object to read.
        *names: Attributes that must be positive ints.
        optional: Attributes that may also be ``None``.
    """
    for name in (*names, *optional):
        value = getattr(config, name)
        if name in optional and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_device(device: object) -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``), checked to exist here.

    Raises:
        ConfigError: Not a device string (naming the valid forms), or a CUDA / MPS device this
            machine does not have.

    Examples:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("gpu")
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: device 'gpu' is not a device: use 'cpu', 'cuda', 'cuda:N', 'mps', 'meta' or a torch.device
    """
    if device is None or isinstance(device, torch.device) and device.type not in ("cuda", "mps"):
        return device
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {device!r} is not a device: use 'cpu', 'cuda', 'cuda:N', 'mps', 'meta' "
                          "or a torch.device") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: CUDA is not available here (torch {torch.__version__}, "
                              "no GPU or a CPU-only build); use 'cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if resolved.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"device {device!r}: MPS is not available here; use 'cpu'")
    return resolved
