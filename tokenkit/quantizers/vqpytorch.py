"""Glue shared by the wrappers of ``vector-quantize-pytorch``
(https://github.com/lucidrains/vector-quantize-pytorch): ``vq-ema``, ``fsq``, ``lfq``,
``rvq`` and ``simvq``.

The library's modules are built and called through these helpers so that every
wrapper behaves the same way:

- [`build_library_module`][tokenkit.quantizers.vqpytorch.build_library_module]
  builds on the ``meta`` device too (FSQ calls ``.item()`` in its constructor);
- [`training_call`][tokenkit.quantizers.vqpytorch.training_call] keeps the
  library quiet (its k-means init logs through loguru);
- in eval mode the VQ wrappers search the library's codebooks themselves with
  [`nearest`][tokenkit.quantizers.vqpytorch.nearest]: the library would run
  its k-means init on the first batch it sees even in eval mode, and searches
  in fp32 only.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
from torch import nn

LIBRARY = "vector_quantize_pytorch"
"""Import name of the wrapped library (also its loguru logger name)."""

M = TypeVar("M", bound=nn.Module)


def build_library_module(factory: Callable[[], M]) -> M:
    """Call ``factory()`` on the ambient default device, building on CPU first when that is ``meta``.

    Some library constructors read tensor values (``FSQ`` computes its codebook
    size with ``.item()``), which fails on ``meta``; the module is then built on
    CPU and moved to ``meta`` (non-persistent buffers such as FSQ's implicit
    codebook are rebuilt by [`tokenkit.from_pretrained`][tokenkit.from_pretrained]).
    """
    device = torch.get_default_device()
    if device.type != "meta":
        return factory()
    with torch.device("cpu"):
        module = factory()
    return module.to(device)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the library's loguru messages inside the block (e.g. "k-means init received ...")."""
    try:
        from loguru import logger
    except ImportError:  # pragma: no cover - loguru comes with the library
        yield
        return
    logger.disable(LIBRARY)
    try:
        yield
    finally:
        logger.enable(LIBRARY)


def kmeans_pending(module: nn.Module, kmeans_init: bool) -> bool:
    """Whether a library module asked for k-means init still has a codebook waiting for it."""
    return kmeans_init and any(isinstance(getattr(m, "initted", None), torch.Tensor) and not bool(m.initted)
                               for m in module.modules())


@contextlib.contextmanager
def training_call(module: nn.Module, kmeans_init: bool) -> Iterator[None]:
    """Context of a training-mode forward of a library module: a pending k-means init runs quietly."""
    if kmeans_pending(module, kmeans_init):
        with quiet():
            yield
    else:
        yield


def warn_uninitialised(module: nn.Module, kmeans_init: bool, part_name: str) -> None:
    """Warn when an eval-mode forward meets a codebook still waiting for its k-means init.

    The library would fit it to the evaluation batch (randomly, changing state
    in eval mode); the wrappers leave it as built (all zeros: every id is 0).
    """
    if kmeans_pending(module, kmeans_init):
        warnings.warn(f"{part_name}: the codebook is not initialised yet (k-means init runs on the first training "
                      "batch); in eval mode it is left as built (all zeros)", stacklevel=3)


def nearest(x: torch.Tensor, codebook: torch.Tensor, cosine: bool) -> torch.Tensor:
    """Ids ``(...)`` of the codebook rows ``(K, d)`` nearest to ``x`` ``(..., d)``.

    Euclidean, or the largest dot product when ``cosine`` (inputs and codebook
    already normalised). Runs in the inputs' precision, at least fp32: the
    library always searches in fp32 and clamps tiny distances, so its picks
    among near-duplicate codes (k-means on fewer vectors than codes, dead-code
    replacement) can change with the batch; this search keeps eval mode
    batch-independent, in float64 too.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    x, book = x.to(dtype), codebook.to(dtype)
    if cosine:
        return (x @ book.t()).argmax(dim=-1)
    distances = x.pow(2).sum(-1, keepdim=True) - 2 * x @ book.t() + book.pow(2).sum(-1)
    return distances.argmin(dim=-1)


def exact_codes(exact: torch.Tensor, estimator: torch.Tensor) -> torch.Tensor:
    """Codes whose value is ``exact`` (the looked-up code) and whose gradient is ``estimator``'s.

    The library's estimators (straight-through, rotation trick) return the code
    only up to rounding; this makes ``forward(...).codes`` equal ``lookup(indices)``
    exactly without changing any gradient.
    """
    return exact.detach().to(estimator.dtype) + (estimator - estimator.detach())
