"""Opt-in ``torch.compile`` for tokenkit models, with a clear error where the backend cannot run.

``torch.compile`` compiles lazily: a missing C++ compiler (inductor on CPU) or a
missing Triton (inductor on CUDA) would otherwise surface as a long backend
traceback at the first call. [`check_compile_backend`][tokenkit.models.compile.check_compile_backend]
looks for them up front and raises a [`ConfigError`][tokenkit.errors.ConfigError]
that names what is missing and how to proceed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from tokenkit.errors import ConfigError


def find_cxx_compiler() -> str | None:
    """The C++ compiler inductor would use for CPU code, or ``None`` if there is none.

    Asks inductor (``torch._inductor.cpp_builder.get_cpp_compiler``, which honours
    ``$CXX`` and ``torch._inductor.config.cpp.cxx``); where that private helper is
    unavailable, looks for ``$CXX``, ``g++``, ``clang++`` or ``c++`` on ``PATH``.
    """
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # pragma: no cover - older or newer torch layouts
        candidates = [os.environ.get("CXX"), "g++", "clang++", "c++"]
        return next((found for c in candidates if c and (found := shutil.which(c))), None)
    try:
        return get_cpp_compiler()
    except Exception:  # noqa: BLE001 - InvalidCxxCompiler and whatever a probe raises mean "none usable"
        return None


def has_triton() -> bool:
    """Whether Triton (inductor's GPU code generator) can be imported."""
    try:
        from torch.utils._triton import has_triton as _has_triton
    except ImportError:  # pragma: no cover
        return False
    return bool(_has_triton())


def check_compile_backend(backend: Any = "inductor", devices: Iterable[torch.device] = ()) -> None:
    """Raise if ``backend`` cannot compile for ``devices``.

    Only the ``"inductor"`` backend (the default of ``torch.compile``) needs outside
    tools: a C++ compiler for CPU code and Triton for CUDA code. Other backends
    (``"eager"``, ``"aot_eager"``, a callable) are not checked.

    Raises:
        ConfigError: Naming the missing tool and the ways out (install it, or
            ``backend="eager"`` / no compile).

    Examples:
        >>> check_compile_backend("eager")   # needs nothing; "inductor" on CPU needs a C++ compiler
    """
    if backend != "inductor":
        return
    types = {torch.device(d).type for d in devices} or {"cpu"}
    if "cpu" in types and find_cxx_compiler() is None:
        raise ConfigError(
            "torch.compile (backend 'inductor') needs a C++ compiler to generate CPU code, and none was found "
            "(looked for $CXX and g++ as torch._inductor.config.cpp.cxx says). Install one (e.g. apt-get install g++, "
            "or conda install gxx), set CXX=/path/to/compiler, or run without compile (the eager model is the "
            "reference; compile is only a speed-up)")
    if "cuda" in types and not has_triton():
        raise ConfigError(
            "torch.compile (backend 'inductor') needs Triton to generate CUDA code, and it cannot be imported. "
            "Install it (pip install triton; it ships with the CUDA wheels of torch), or run without compile")


def module_devices(modules: Iterable[nn.Module | None]) -> set[torch.device]:
    """Devices of the parameters and buffers of ``modules``."""
    return {t.device for m in modules if m is not None for t in (*m.parameters(), *m.buffers())}


def compile_modules(modules: Iterable[nn.Module | None], **options: Any) -> None:
    """``module.compile(**options)`` (in place) for each module, after checking the backend.

    Raises:
        ConfigError: The backend cannot run here (see [`check_compile_backend`][tokenkit.models.compile.check_compile_backend]).
    """
    modules = [m for m in modules if m is not None]
    check_compile_backend(options.get("backend", "inductor"), module_devices(modules))
    for module in modules:
        module.compile(**options)
