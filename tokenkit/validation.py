"""Small validators shared by the part configs."""

from __future__ import annotations

from typing import Any


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
