"""A linear map with its activation or residual add fused, for autograd-free CPU inference.

``F.linear`` runs fp32 CPU matrix products through the BLAS torch was built
with (MKL in the x86 wheels), then bias, activation and residual add as
separate passes. oneDNN's matmul primitive (``torch.ops.mkldnn._linear_pointwise``,
the kernel torch.compile's inductor emits for CPU linears) does all of it in
one call; on the AMD EPYC (AVX-512) machine this was written on it ran a
ViT-L-sized ``(321, 1024) x (1024, 4096)`` product about 1.5x faster than MKL,
with the same fp32 accuracy (both about 4e-6 from a float64 reference for
outputs of order 1; the two differ in summation order, so not bitwise).

[`linear`][tokenkit.layers.linear.linear] takes the fused path only where it
applies: ``fused=True``, CPU, float32 input and weight, autograd off, no CPU
autocast, not inside ``torch.compile`` (which fuses by itself) and torch built
with oneDNN. Everywhere else it is ``F.linear`` followed by the activation and
the add, which is also what training uses.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Activation = Literal["gelu", "tanh"] | None


def _probe() -> bool:
    try:
        op = torch.ops.mkldnn._linear_pointwise
        return torch.backends.mkldnn.is_available() and "binary" in op.overloads()
    except (AttributeError, RuntimeError):  # pragma: no cover - torch without oneDNN
        return False


ONEDNN_LINEAR: bool = _probe()
"""Whether this torch has oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``)."""


def fused_applies(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether [`linear`][tokenkit.layers.linear.linear] with ``fused=True`` takes the oneDNN path for ``x``."""
    return (ONEDNN_LINEAR and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu") and torch.backends.mkldnn.enabled)


def linear(x: torch.Tensor, layer: nn.Linear, *, activation: Activation = None,
           residual: torch.Tensor | None = None, fused: bool = False) -> torch.Tensor:
    """``activation(layer(x))``, or ``residual + layer(x)``, in one oneDNN call where it applies.

    Args:
        x: ``(..., in_features)``.
        layer: The ``nn.Linear`` whose weight and bias are used.
        activation: ``"gelu"`` (exact, erf), ``"tanh"`` or ``None``.
        residual: ``(..., out_features)`` added to the output (not with an activation).
        fused: Allow the oneDNN path (see the module docstring for where it applies).

    Returns:
        ``(..., out_features)``.

    Examples:
        >>> import torch
        >>> layer = torch.nn.Linear(8, 4)
        >>> x, r = torch.randn(2, 3, 8), torch.randn(2, 3, 4)
        >>> with torch.no_grad():
        ...     torch.allclose(linear(x, layer, residual=r, fused=True), r + layer(x), atol=1e-6)
        True
    """
    if residual is not None and activation is not None:
        raise ValueError("linear: give an activation or a residual, not both")
    if fused and fused_applies(x, layer.weight):
        op = torch.ops.mkldnn._linear_pointwise
        if residual is not None:
            return op.binary(x, residual, layer.weight, layer.bias, "add")
        return op(x, layer.weight, layer.bias, "none" if activation is None else activation, [],
                  "none" if activation == "gelu" else "")
    y = F.linear(x, layer.weight, layer.bias)
    if activation == "gelu":
        return F.gelu(y)
    if activation == "tanh":
        return torch.tanh(y)
    return y if residual is None else residual + y
