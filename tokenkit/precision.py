"""Arithmetic precision: ``"auto"`` picks what the hardware runs natively.

bf16 autocast is a large win only where the hardware computes in bf16: CUDA
devices with bf16 support, and CPUs with AVX-512-bf16 or AMX-bf16 when torch's
kernels use them. Elsewhere it is emulated and slow (a demo training step was
measured 13.5x slower in bf16 than in fp32 on a 2-core AVX2 CPU). So:

| device | ``"auto"`` |
| --- | --- |
| CUDA with bf16 (Ampere and newer) | ``bf16`` |
| CUDA without bf16 | ``fp16`` |
| CPU with AVX-512-bf16 or AMX-bf16, used by torch | ``bf16`` |
| any other CPU, MPS, others | ``fp32`` |

A CPU counts as native bf16 only when torch dispatches AVX-512 kernels
(``torch.backends.cpu.get_cpu_capability()``; ``ATEN_CPU_CAPABILITY=avx2``
lowers it) and oneDNN is not capped below AVX-512-bf16 (``ONEDNN_MAX_CPU_ISA``).
fp16 on a CPU is never chosen automatically: it is unusably slow there.

Examples:
    >>> from tokenkit.precision import resolve_precision
    >>> resolve_precision("fp32", "cpu")
    'fp32'
    >>> resolve_precision("auto", "cpu") in ("fp32", "bf16")
    True
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Literal

import torch

from tokenkit.errors import ConfigError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
"""Accepted precision names."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) that still include the AVX-512 bf16 instructions.
_ONEDNN_BF16_ISAS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16",
                     "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "ALL"}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def cpu_bf16_native() -> bool:
    """Whether this CPU computes bf16 matmuls natively *as torch runs them here* (see the module docstring)."""
    has = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    if has is not None:
        hardware = bool(has()) or bool(amx() if amx is not None else False)
    else:
        flags = _cpu_flags()
        hardware = "avx512_bf16" in flags or "amx_bf16" in flags
    if not hardware:
        return False
    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        return False
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap is None or cap.upper() in _ONEDNN_BF16_ISAS


def cpu_description() -> str:
    """One line: CPU name, torch's CPU capability, and whether bf16 is native."""
    caps = getattr(torch.cpu, "get_capabilities", None)
    name = caps().get("cpu_name", "CPU") if callable(caps) else "CPU"
    bf16 = "native bf16 (AVX-512-bf16 / AMX)" if cpu_bf16_native() else "no native bf16"
    return f"{name}, torch CPU capability {torch.backends.cpu.get_cpu_capability()}, {bf16}"


def resolve_precision(precision: str = "auto", device: torch.device | str | None = "cpu") -> str:
    """``"auto"`` -> ``"fp32"``, ``"bf16"`` or ``"fp16"`` for ``device``; other names are checked and returned.

    Raises:
        ConfigError: An unknown name, or ``fp16`` / ``bf16`` requested where the device cannot run it.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device or "cpu")
    if precision != "auto":
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError("precision 'bf16' requested on a CUDA device without bf16 support; use 'fp16' or 'auto'")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_bf16_native() else "fp32"
    return "fp32"


def autocast(precision: str, device: torch.device | str | None = "cpu") -> contextlib.AbstractContextManager:
    """The autocast context of a resolved (or ``"auto"``) precision on ``device``; no-op for fp32."""
    device = torch.device(device or "cpu")
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[resolved])


def describe(precision: str, device: torch.device | str | None = "cpu") -> str:
    """``"precision auto -> bf16 (AMD EPYC, ...)"``: what was chosen and why, for a one-time print."""
    device = torch.device(device or "cpu")
    resolved = resolve_precision(precision, device)
    why = cpu_description() if device.type == "cpu" else (
        torch.cuda.get_device_name(device) if device.type == "cuda" else device.type)
    prefix = f"precision {precision} -> {resolved}" if precision == "auto" else f"precision {resolved}"
    return f"{prefix} ({why})"
