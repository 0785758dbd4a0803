"""Turning parts and specs into modules."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import torch
from torch import nn

from tokenkit.registry import get_part
from tokenkit.specs import Part, resolve_part, sub_part_kind


def instantiate(kind: str, name: str, config: Any) -> nn.Module:
    """Construct the part ``kind``/``name`` from its typed ``config``, building sub-parts first."""
    cls = get_part(kind, name)
    sub_parts = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        sub_kind = sub_part_kind(field)
        if sub_kind is not None and isinstance(value, Part):
            sub_parts[field.name] = build_part(sub_kind, value)
    return cls(config, **sub_parts)


def build_part(kind: str, part: Part | str, *, device: torch.device | str | None = None, **options: Any) -> nn.Module:
    """Build one registered part.

    Args:
        kind: Part kind (``"encoder"``, ``"quantizer"``, ...).
        part: A [`Part`][tokenkit.specs.Part] or a registered name.
        device: Device to construct on (``"meta"`` builds without memory).
        **options: Options added to (or overriding) the part's.

    Returns:
        The module, in training mode as PyTorch builds it.

    Raises:
        ConfigError: Unknown name or option, or an invalid value.

    Examples:
        >>> import tokenkit as tk
        >>> fsq = tk.build_part("quantizer", "fsq", levels=(8, 5, 5, 5))
        >>> fsq.codebook_size
        1000
    """
    if isinstance(part, str):
        part = Part(part)
    if options:
        part = part.with_options(**options)
    config = resolve_part(kind, part)
    with on_device(device):
        return instantiate(kind, part.name, config)


def on_device(device: torch.device | str | None) -> contextlib.AbstractContextManager:
    """Context in which new tensors are created on ``device`` (no-op for ``None``)."""
    return torch.device(device) if device is not None else contextlib.nullcontext()
