"""Weights of another resolution or token count: the patch-grid position tables resampled on load.

A checkpoint trained at one resolution loads into the same composition at another: the rows of each
position table over the patch grid are interpolated to the model's grid (bicubic, antialiased, as
timm's ``timm.layers.resample_abs_pos_embed``, which ViT fine-tuning at a higher resolution uses since
"An Image is Worth 16x16 Words", https://arxiv.org/abs/2010.11929, section 3.2). Everything else must
fit as it is: latent-token tables are never resampled (a tail-drop model takes the first rows of a
checkpoint with more tokens) and patch-embedding weights of another patch size are refused.

Parts declare their tables as class attributes (defaults on the encoder and decoder kinds,
``tokenkit.kinds``), which this module reads from any module of a model:

* ``grid_tables``: ``{parameter name: leading non-grid rows}`` for tables ``(prefix + gh * gw, W)``
  whose grid rows are row-major over the patch grid ``grid_shape = (gh, gw)``;
* ``token_tables``: names of tables with one row per latent token ``(N, W)``;
* ``patch_weights``: ``{parameter name: dims whose size follows the patch size}`` (a weight that differs
  in these dims only is refused as another patch size).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

Grid = tuple[int, int]
"""A patch grid ``(rows, cols)``."""


def resample_grid_embedding(table: torch.Tensor, old_grid: Grid, new_grid: Grid, *, prefix_rows: int = 1,
                            mode: str = "bicubic", antialias: bool = True) -> torch.Tensor:
    """A position table over a patch grid, interpolated to another grid.

    The rows ``(prefix_rows + gh * gw, W)`` are the leading rows (e.g. the class token), kept as
    they are, then the grid rows in row-major order; the grid is interpolated as a ``(1, W, gh, gw)``
    image with ``F.interpolate(mode=mode, antialias=antialias, align_corners=False)`` in float32 and
    cast back, the same computation as timm's ``timm.layers.resample_abs_pos_embed`` (for a
    ``(prefix_rows + gh * gw, W)`` table without its batch dim). An unchanged grid returns ``table``
    itself.

    Args:
        table: ``(prefix_rows + gh * gw, W)``.
        old_grid: ``(gh, gw)`` of ``table``.
        new_grid: ``(GH, GW)`` wanted.
        prefix_rows: Leading rows that are not on the grid.
        mode: ``F.interpolate`` mode (``"bicubic"``, ``"bilinear"``, ...).
        antialias: Antialiased downsampling (bilinear and bicubic modes).

    Returns:
        ``(prefix_rows + GH * GW, W)``, in ``table``'s dtype.

    Raises:
        ValueError: ``table`` does not have ``prefix_rows + gh * gw`` rows.

    Examples:
        >>> import torch
        >>> table = torch.randn(1 + 4 * 4, 8)
        >>> resample_grid_embedding(table, (4, 4), (4, 4)) is table
        True
        >>> wide = resample_grid_embedding(table, (4, 4), (5, 6))
        >>> wide.shape, torch.equal(wide[:1], table[:1])  # the class row is kept
        (torch.Size([31, 8]), True)
    """
    old_grid, new_grid = tuple(old_grid), tuple(new_grid)
    if table.ndim != 2 or table.shape[0] != prefix_rows + old_grid[0] * old_grid[1]:
        raise ValueError(f"a table of {prefix_rows} + {old_grid[0]}x{old_grid[1]} rows, got shape {tuple(table.shape)}")
    if old_grid == new_grid:
        return table
    prefix, grid = table[:prefix_rows], table[prefix_rows:]
    image = grid.float().reshape(1, *old_grid, -1).permute(0, 3, 1, 2)  # (1, W, gh, gw)
    image = F.interpolate(image, size=new_grid, mode=mode, antialias=antialias, align_corners=False)
    grid = image.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], -1).to(table.dtype)
    return torch.cat([prefix, grid], dim=0)


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _grid(grid: Grid) -> str:
    return f"{grid[0]}x{grid[1]}"


def _square(rows: int) -> Grid | None:
    side = math.isqrt(max(rows, 0))
    return (side, side) if side > 0 and side * side == rows else None


def grid_shapes(model: nn.Module) -> dict[str, Grid]:
    """The patch grid of every declared grid table of ``model``, by state-dict key.

    Examples:
        >>> import tokenkit as tk
        >>> grid_shapes(tk.build("titok-tiny", image_size=48, device="meta"))
        {'decoder.positional_embedding': (6, 6), 'encoder.positional_embedding': (6, 6)}
    """
    found = {}
    for prefix, module in model.named_modules():
        for name in getattr(module, "grid_tables", None) or {}:
            found[_key(prefix, name)] = tuple(module.grid_shape)
    return dict(sorted(found.items()))


@dataclasses.dataclass
class Fitted:
    """A checkpoint fitted to a model by [`fit_state_dict`][tokenkit.weights.resample.fit_state_dict].

    Examples:
        >>> import tokenkit as tk
        >>> state = tk.build("titok-tiny").state_dict()
        >>> fitted = fit_state_dict(tk.build("titok-tiny", num_tokens=4, device="meta"), state)
        >>> fitted.changes, fitted.notes["encoder.latent_tokens"]  # doctest: +ELLIPSIS
        ([], 'a different num_tokens is not resampled (only a model whose quantizer supports_prefix ...)')
    """

    state_dict: dict[str, torch.Tensor]
    """The checkpoint with its resampled grid tables and token-table prefixes."""
    changes: list[str] = dataclasses.field(default_factory=list)
    """What was changed, one phrase each, for the one warning of the load."""
    notes: dict[str, str] = dataclasses.field(default_factory=dict)
    """Why a key of another shape was not fitted, by key (for the error)."""


def fit_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = False,
                   checkpoint_grids: Mapping[str, Grid] | None = None, take_prefix: bool = False,
                   expected: Mapping[str, torch.Tensor] | None = None) -> Fitted:
    """``state_dict`` fitted to ``model``'s patch grids and token count where the parts declare how.

    * A grid table of another grid is resampled with
      [`resample_grid_embedding`][tokenkit.weights.resample.resample_grid_embedding]; the checkpoint's
      grid is ``checkpoint_grids[key]``, else the square of its rows.
    * A token table with more rows than the model's keeps its first rows when ``take_prefix`` (a
      tail-drop model, trained to read any prefix of the tokens); else, like fewer rows, it is refused.
    * A patch weight of another patch size is refused (not resampled).

    Nothing is changed with ``strict``; the notes then say why each key does not fit.

    Args:
        model: The module (its ``state_dict()`` gives the shapes wanted; it may be on ``meta``).
        state_dict: tokenkit-layout state dict.
        strict: Change nothing.
        checkpoint_grids: The checkpoint's grid of its grid tables, by key, when known (its saved spec).
        take_prefix: Take the first rows of token tables with more rows.
        expected: ``model.state_dict()`` when the caller has it already.

    Examples:
        >>> import tokenkit as tk
        >>> state = tk.build("titok-tiny").state_dict()
        >>> fitted = fit_state_dict(tk.build("titok-tiny", image_size=48, device="meta"), state)
        >>> fitted.state_dict["encoder.positional_embedding"].shape  # 1 + 6 * 6 rows
        torch.Size([37, 64])
        >>> print(*fitted.changes)  # doctest: +NORMALIZE_WHITESPACE
        resampled decoder.positional_embedding, encoder.positional_embedding from 4x4 to 6x6 patches (bicubic,
        antialiased); fine-tune for best quality
    """
    expected = model.state_dict() if expected is None else expected
    out = dict(state_dict)
    grids = dict(checkpoint_grids or {})
    resampled: dict[tuple[Grid, Grid], list[str]] = {}
    prefixed: dict[tuple[int, int], list[str]] = {}
    notes: dict[str, str] = {}

    def differs(key: str) -> bool:
        return key in out and key in expected and out[key].shape != expected[key].shape

    for prefix, module in model.named_modules():
        for name, rows in (getattr(module, "grid_tables", None) or {}).items():
            key = _key(prefix, name)
            # a known grid of another shape is resampled even with as many rows (4x6 -> 6x4, a transposed image)
            regrid = key in out and key in expected and grids.get(key) is not None \
                and tuple(grids[key]) != tuple(module.grid_shape)
            if not (differs(key) or regrid):
                continue
            old, new = out[key], expected[key]
            if old.ndim != 2 or old.shape[1:] != new.shape[1:]:
                continue  # another width: another model size, not another grid
            old_grid, new_grid = grids.get(key) or _square(old.shape[0] - rows), tuple(module.grid_shape)
            if old_grid is None or rows + old_grid[0] * old_grid[1] != old.shape[0]:
                notes[key] = (f"cannot tell the checkpoint's patch grid from {old.shape[0] - rows} rows (not a "
                              "square); load it with its saved spec")
            elif strict:
                notes[key] = f"patch grid {_grid(old_grid)} vs {_grid(new_grid)}, not resampled with strict=True"
            else:
                out[key] = resample_grid_embedding(old, old_grid, new_grid, prefix_rows=rows)
                resampled.setdefault((old_grid, new_grid), []).append(key)
        for name in getattr(module, "token_tables", None) or ():
            key = _key(prefix, name)
            if not differs(key):
                continue
            old, new = out[key], expected[key]
            if old.ndim != 2 or old.shape[1:] != new.shape[1:]:
                continue
            if take_prefix and old.shape[0] > new.shape[0] and not strict:
                out[key] = old[: new.shape[0]]
                prefixed.setdefault((new.shape[0], old.shape[0]), []).append(key)
            else:
                why = ("strict=True takes no prefix" if take_prefix and old.shape[0] > new.shape[0] else
                       "only a model whose quantizer supports_prefix (tail-drop) takes the first rows of a "
                       "checkpoint with more tokens")
                notes[key] = f"a different num_tokens is not resampled ({why})"
        for name, dims in (getattr(module, "patch_weights", None) or {}).items():
            key = _key(prefix, name)
            if differs(key) and out[key].ndim == expected[key].ndim and all(  # differs in the patch dims only
                    d in dims for d, (a, b) in enumerate(zip(out[key].shape, expected[key].shape)) if a != b):
                notes[key] = "a different patch size is not resampled"
    changes = [f"resampled {', '.join(sorted(keys))} from {_grid(old)} to {_grid(new)} patches (bicubic, "
               "antialiased); fine-tune for best quality" for (old, new), keys in resampled.items()]
    changes += [f"took the first {n} of {m} token rows of {', '.join(sorted(keys))} (tail-drop: the model reads "
                "a prefix of the checkpoint's tokens)" for (n, m), keys in prefixed.items()]
    return Fitted(out, changes, notes)
