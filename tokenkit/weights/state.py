"""State dicts into modules: loading with named differences (patch grids resampled), and dtype casting."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import torch
from torch import nn

from tokenkit.errors import ConfigError, WeightsError
from tokenkit.weights.resample import Grid, fit_state_dict

_LIST_LIMIT = 12

TORCH_DTYPES: dict[str, torch.dtype | None] = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "float64": torch.float64, "auto": None}
"""Names ``torch_dtype`` accepts besides a ``torch.dtype`` (``"auto"``: the dtypes stored in the file)."""


def _names(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
    return ", ".join(keys[:_LIST_LIMIT]) + more


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, assign: bool = False,
                 strict: bool = False, checkpoint_grids: Mapping[str, Grid] | None = None) -> None:
    """Load ``state_dict`` into ``model``: every key must exist with the same shape, except that weights of
    another resolution or token count are fitted where the parts declare how
    ([`fit_state_dict`][tokenkit.weights.resample.fit_state_dict]), with one ``UserWarning`` saying so.

    Position tables over the patch grid of another grid (another ``image_size``) are resampled
    (bicubic, antialiased, as timm's ``resample_abs_pos_embed``); a model whose bottleneck
    ``supports_prefix`` (tail-drop) takes the first rows of latent-token tables with more tokens.
    Another ``num_tokens`` otherwise, and another ``patch_size``, are refused.

    Args:
        model: The module.
        state_dict: tokenkit-layout state dict.
        assign: Replace the parameters by the given tensors (for models built on ``meta``).
        strict: Refuse weights of another patch grid or token count too (nothing resampled).
        checkpoint_grids: The checkpoint's patch grid ``(rows, cols)`` of its grid tables, by key, when
            known (default: square).

    Raises:
        WeightsError: Listing missing, unexpected and mis-shaped keys by name, with both shapes.

    Examples:
        >>> import torch
        >>> load_weights(torch.nn.Linear(2, 3), {"weight": torch.zeros(3, 2)})
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: the weights do not fit this Linear:
          1 missing: bias

        A 32-pixel TiTok's weights at 48 pixels:

        >>> import warnings, tokenkit as tk
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     load_weights(tk.build("titok-tiny", image_size=48), tk.build("titok-tiny").state_dict())
        >>> print(caught[0].message)  # doctest: +NORMALIZE_WHITESPACE
        resampled decoder.positional_embedding, encoder.positional_embedding from 4x4 to 6x6 patches (bicubic,
        antialiased); fine-tune for best quality
    """
    take_prefix = getattr(model, "supports_prefix", False) is True  # a Tokenizer's bottleneck is tail-drop
    expected = model.state_dict()
    fitted = fit_state_dict(model, state_dict, strict=strict, checkpoint_grids=checkpoint_grids,
                            take_prefix=take_prefix, expected=expected)
    state_dict = fitted.state_dict
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(state_dict) if state_dict[k].shape != expected[k].shape)
    notes: dict[str, list[str]] = {}  # keys by why they were not fitted
    for key in misshaped:
        if key in fitted.notes:
            notes.setdefault(fitted.notes[key], []).append(key)
    misshaped = [f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})" for k in misshaped]
    if missing or unexpected or misshaped:
        lines = [f"the weights do not fit this {type(model).__name__}:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                lines.append(f"  {len(keys)} {title}: {_names(keys)}")
        lines += [f"  {why}: {_names(keys)}" for why, keys in notes.items()]
        raise WeightsError("\n".join(lines))
    if fitted.changes:
        warnings.warn("; ".join(fitted.changes), UserWarning, stacklevel=2)
    model.load_state_dict(state_dict, strict=True, assign=assign)


def resolve_torch_dtype(torch_dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``torch_dtype`` as a floating ``torch.dtype``, or ``None`` for the checkpoint's own dtypes.

    Raises:
        ConfigError: Not a floating dtype or one of the names in ``TORCH_DTYPES``.

    Examples:
        >>> resolve_torch_dtype("bf16")
        torch.bfloat16
    """
    if torch_dtype is None or isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point:
        return torch_dtype
    if isinstance(torch_dtype, str) and torch_dtype in TORCH_DTYPES:
        return TORCH_DTYPES[torch_dtype]
    raise ConfigError(f"torch_dtype must be a floating torch.dtype or one of {', '.join(TORCH_DTYPES)}, "
                      f"got {torch_dtype!r}")


def cast_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """Floating tensors cast to ``dtype`` (``None``: unchanged); integer buffers are kept as they are.

    Examples:
        >>> import torch
        >>> state = {"weight": torch.zeros(2, 2), "count": torch.zeros(2, dtype=torch.int64)}
        >>> {name: tensor.dtype for name, tensor in cast_state_dict(state, torch.bfloat16).items()}
        {'weight': torch.bfloat16, 'count': torch.int64}
        >>> cast_state_dict(state, None)["weight"].dtype
        torch.float32
    """
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() and v.dtype != dtype else v
            for k, v in state_dict.items()}
