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


def image_shape(value: Any, name: str = "image_size") -> tuple[int, int]:
    """An image size as ``(H, W)``: an int is a square, a pair (tuple or list) is ``(H, W)``.

    Raises:
        ValueError: Not a positive int or a pair of positive ints.

    Examples:
        >>> image_shape(256), image_shape((256, 384)), image_shape([32, 48])
        ((256, 256), (256, 384), (32, 48))
    """
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    if (isinstance(pair, (tuple, list)) and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)):
        return int(pair[0]), int(pair[1])
    raise ValueError(f"{name} must be a positive int or an (H, W) pair of positive ints, got {value!r}")


def check_patch_divisible(size: Any, patch_size: int, name: str = "image_size") -> tuple[int, int]:
    """``size`` as ``(H, W)``, checked to be divisible by ``patch_size`` on both sides.

    Raises:
        ValueError: Not a valid size, or a side not divisible by ``patch_size`` (naming the side).

    Examples:
        >>> check_patch_divisible((32, 48), 8)
        (32, 48)
        >>> check_patch_divisible((32, 50), 8)
        Traceback (most recent call last):
        ...
        ValueError: image_size (32, 50): width 50 is not divisible by patch_size 8
    """
    height, width = image_shape(size, name)
    if isinstance(size, int):
        if size % patch_size:
            raise ValueError(f"{name} {size} is not divisible by patch_size {patch_size}")
        return height, width
    for side, value in (("height", height), ("width", width)):
        if value % patch_size:
            raise ValueError(f"{name} {tuple(size)}: {side} {value} is not divisible by patch_size {patch_size}")
    return height, width


def format_size(size: Any) -> str:
    """``256`` -> ``'256'``, ``(256, 384)`` -> ``'(256, 384)'`` (for messages and ``size=`` hints)."""
    return str(size) if isinstance(size, int) else str(tuple(size))


class PatchGrid:
    """Mixin of part configs with ``image_size`` (int or ``(H, W)``) and ``patch_size``: the image shape and
    the patch grid. ``check_grid`` (call it in ``__post_init__``) turns a list into a tuple and checks both
    sides are divisible by the patch size."""

    image_size: Any
    patch_size: int

    def check_grid(self) -> None:
        """Normalise ``image_size`` (a list from JSON / YAML becomes a tuple) and check it against ``patch_size``."""
        if isinstance(self.image_size, list):
            object.__setattr__(self, "image_size", tuple(self.image_size))
        check_patch_divisible(self.image_size, self.patch_size)

    @property
    def image_shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return image_shape(self.image_size)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Patch grid ``(gh, gw) = (H // P, W // P)``."""
        height, width = self.image_shape
        return height // self.patch_size, width // self.patch_size

    @property
    def grid_size(self) -> int:
        """Patches per side ``G`` (square images only).

        Raises:
            ValueError: For a non-square ``image_size`` (use ``grid_shape``).
        """
        rows, cols = self.grid_shape
        if rows != cols:
            raise ValueError(f"grid_size is for square images; image_size {self.image_size} has grid {rows}x{cols} "
                             "(use grid_shape)")
        return rows
