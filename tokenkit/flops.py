"""FLOP counting that sees every kernel tokenkit runs.

``torch.utils.flop_counter.FlopCounterMode`` counts the matrix products and
convolutions it has formulas for and silently counts 0 for other kernels. Two
that tokenkit's CPU inference takes have none in torch: the CPU flash-attention
kernel of ``F.scaled_dot_product_attention`` and oneDNN's fused linear
(``torch.ops.mkldnn._linear_pointwise``, see ``tokenkit.layers.linear``).
[`count_flops`][tokenkit.flops.count_flops] registers formulas for both (once,
process-wide) before counting.

Examples:
    >>> import torch
    >>> layer = torch.nn.Linear(64, 32)
    >>> with torch.no_grad():
    ...     flops, _ = count_flops(lambda: layer(torch.randn(4, 64)))
    >>> flops == 2 * 4 * 64 * 32
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode


def _linear_flops(x_shape, w_shape) -> int:
    """``2 * rows * in * out`` for ``(..., in) @ (out, in).T``."""
    return 2 * math.prod(x_shape[:-1]) * w_shape[1] * w_shape[0]


def _fused_linear_flops(x_shape, second, *args, out_shape=None, **kwargs) -> int:
    """Both overloads of ``mkldnn._linear_pointwise``: ``(X, W, B, attr, scalars, algorithm)`` and
    ``binary``: ``(X, other, W, B, attr)`` (told apart by where the ``attr`` string sits)."""
    weight = args[0] if len(args) >= 3 and isinstance(args[2], str) else second
    return _linear_flops(x_shape, weight)


def _registered(packet: Any) -> bool:
    return packet in flop_counter.flop_registry or packet.default in flop_counter.flop_registry


def register_flop_formulas() -> None:
    """Teach ``FlopCounterMode`` the CPU flash attention and oneDNN's fused linear (idempotent)."""
    flash = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if flash is not None and not _registered(flash):
        flop_counter.register_flop_formula(flash)(
            lambda q, k, v, *args, out_shape=None, **kwargs: flop_counter.sdpa_flop_count(q, k, v))
    try:
        fused = torch.ops.mkldnn._linear_pointwise
        fused.overloads()
    except (AttributeError, RuntimeError):  # torch without oneDNN
        return
    if not _registered(fused):
        flop_counter.register_flop_formula(fused)(_fused_linear_flops)


def count_flops(fn: Callable[[], Any]) -> tuple[int, Any]:
    """FLOPs of one call of ``fn`` (multiply and add counted as 2) and its result.

    Args:
        fn: A call without arguments, e.g. ``lambda: tok.detokenize(ids)``.

    Returns:
        ``(flops, fn())``.
    """
    register_flop_formulas()
    with FlopCounterMode(display=False) as counter:
        out = fn()
    return counter.get_total_flops(), out
