"""Ablations as grids of compositions: cost of every combination of knob values and part swaps.

    result = tk.ablate("titok-tiny", num_tokens=[8, 16, 32], quantizer=["vq", "fsq"])
    print(result.to_markdown()); result.to_csv("ablation.csv"); result.plot("ablation.png")

Each combination is expanded into a spec (so an invalid one is reported, not
fatal) and measured: parameters, tokens and bits per image, FLOPs per image of
encoding and decoding (``torch.utils.flop_counter`` on the ``meta`` device,
so no memory or compute is spent) and, optionally, measured encode/decode
throughput on real tensors.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from tokenkit.errors import ConfigError, TokenkitError
from tokenkit.specs import Part, TokenizerSpec


@dataclasses.dataclass
class AblationRow:
    """One composition of the grid and its measurements (``None`` where not measured)."""

    setting: dict[str, str]
    parameters: int | None = None
    tokens_per_image: int | None = None
    bits_per_image: float | None = None
    gflops_encode: float | None = None
    gflops_decode: float | None = None
    encode_images_per_s: float | None = None
    decode_images_per_s: float | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        """``axis=value`` pairs, comma separated."""
        return ", ".join(f"{k}={v}" for k, v in self.setting.items())


COLUMNS = ("parameters", "tokens_per_image", "bits_per_image", "gflops_encode", "gflops_decode",
           "encode_images_per_s", "decode_images_per_s", "error")


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclasses.dataclass
class AblationResult:
    """The rows of an ablation, with table and plot writers."""

    base: str
    axes: list[str]
    rows: list[AblationRow]

    def to_markdown(self) -> str:
        """A markdown table (one row per composition)."""
        head = [*self.axes, *COLUMNS]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [row.setting[a] for a in self.axes] + [_fmt(getattr(row, c)) for c in COLUMNS]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV (raw numbers)."""
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*self.axes, *COLUMNS])
            for row in self.rows:
                writer.writerow([row.setting[a] for a in self.axes] + ["" if getattr(row, c) is None
                                                                       else getattr(row, c) for c in COLUMNS])

    def plot(self, path: str | os.PathLike) -> None:
        """Bar charts of parameters, GFLOPs per image and throughput per composition, as a PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows if r.error is None]
        if not rows:
            raise ConfigError("no valid composition to plot")
        labels = [r.label.replace(", ", "\n") for r in rows]
        x = range(len(rows))
        panels = [("parameters (M)", [[(r.parameters or 0) / 1e6 for r in rows]], [None]),
                  ("GFLOPs per image", [[r.gflops_encode or 0 for r in rows], [r.gflops_decode or 0 for r in rows]],
                   ["encode", "decode"]),
                  ("bits per image", [[r.bits_per_image or 0 for r in rows]], [None])]
        if any(r.encode_images_per_s for r in rows):
            panels.append(("images / s", [[r.encode_images_per_s or 0 for r in rows],
                                          [r.decode_images_per_s or 0 for r in rows]], ["encode", "decode"]))
        fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 1.1 * len(rows) + 2), 2.6 * len(panels)),
                                 sharex=True, squeeze=False)
        for ax, (title, series, names) in zip(axes[:, 0], panels):
            width = 0.8 / len(series)
            for i, (values, name) in enumerate(zip(series, names)):
                ax.bar([p + (i - (len(series) - 1) / 2) * width for p in x], values, width, label=name)
            ax.set_ylabel(title)
            ax.grid(axis="y", alpha=0.3)
            if names[0]:
                ax.legend(fontsize=8)
        axes[-1, 0].set_xticks(list(x), labels, fontsize=8)
        fig.suptitle(f"ablation of {self.base}")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)


def _grid(axes: Mapping[str, Any]) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """All combinations: ``(labels per axis, knobs)``. A list axis sets the knob of its name;
    a mapping axis maps labels to dicts of knobs (e.g. one label setting two knobs)."""
    options = []
    for axis, values in axes.items():
        if isinstance(values, Mapping):
            choices = []
            for label, knobs in values.items():
                if not isinstance(knobs, Mapping):
                    raise ConfigError(f"axis {axis!r}: a mapping axis maps labels to dicts of knobs, "
                                      f"got {knobs!r} for {label!r}")
                choices.append((str(label), dict(knobs)))
        elif isinstance(values, Sequence) and not isinstance(values, str):
            choices = [(v.name if isinstance(v, Part) else str(v), {axis: v}) for v in values]
        else:
            raise ConfigError(f"axis {axis!r} must be a list of values or a mapping of labels to knobs, got {values!r}")
        if not choices:
            raise ConfigError(f"axis {axis!r} has no values")
        options.append([(axis, label, knobs) for label, knobs in choices])
    grid = []
    for combo in itertools.product(*options):
        labels = {axis: label for axis, label, _ in combo}
        knobs: dict[str, Any] = {}
        for _, _, k in combo:
            knobs.update(k)
        grid.append((labels, knobs))
    return grid


def _gflops(fn, *args) -> float:
    with FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() / 1e9


def _rate(fn, batch: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def measure(spec: TokenizerSpec, *, throughput: bool = True, batch: int = 4, repeats: int = 2,
            device: str | torch.device = "cpu") -> dict[str, Any]:
    """Parameters, tokens and bits per image, GFLOPs per image and (optionally) images/s of ``spec``."""
    from tokenkit.api import build

    meta = build(spec, device="meta")
    size, channels = meta.image_size, meta.in_channels
    k, q = meta.codebook_size, getattr(meta.quantizer, "num_codebooks", 1)
    out: dict[str, Any] = {
        "parameters": sum(p.numel() for p in meta.parameters()),
        "tokens_per_image": meta.num_tokens,
        "bits_per_image": None if k is None else meta.num_tokens * q * math.log2(k),
        "gflops_encode": _gflops(meta.encoder, torch.empty(1, channels, size, size, device="meta")),
        "gflops_decode": _gflops(lambda c: meta.pixel_decoder(meta.decoder(c)) if meta.pixel_decoder is not None
                                 else meta.decoder(c), torch.empty(1, meta.num_tokens, meta.code_dim, device="meta")),
    }
    if throughput:
        model = build(spec, device=device)
        images = torch.rand(batch, channels, size, size, device=device)
        with torch.no_grad():
            codes = model.encode(images).codes
            out["encode_images_per_s"] = _rate(lambda: model.encode(images), batch, repeats)
            out["decode_images_per_s"] = _rate(lambda: model.decode(codes), batch, repeats)
    return out


def ablate(base: str | TokenizerSpec, *, throughput: bool = True, batch: int = 4, repeats: int = 2,
           device: str | torch.device = "cpu", progress: bool = False, **axes: Any) -> AblationResult:
    """Measure every combination of the ``axes`` applied to ``base``.

    Args:
        base: A tokenizer model name (axes are its knobs: ``num_tokens``,
            ``encoder_size``, ``image_size``, ``quantizer``, ...) or a
            [`TokenizerSpec`][tokenkit.specs.TokenizerSpec] (axes are its fields:
            ``quantizer=[tk.Part("vq"), tk.Part("fsq")]``).
        throughput: Also time encode and decode on real tensors (builds each model).
        batch: Images per timed call.
        repeats: Timed calls (the median is reported).
        device: Device for the timings.
        progress: Show a tqdm progress bar.
        **axes: ``name=[values]``, or ``name={label: {knob: value, ...}}`` for a
            setting that changes several knobs at once (e.g. encoder and decoder size).

    Returns:
        [`AblationResult`][tokenkit.ablation.AblationResult]; invalid combinations
        are kept as rows with ``error`` set.

    Example:
        >>> import tokenkit as tk
        >>> result = tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False)
        >>> print([row.bits_per_image for row in result.rows])
        [32.0, 64.0]
    """
    from tokenkit.api import spec as named_spec

    if not axes:
        raise ConfigError("ablate needs at least one axis, e.g. num_tokens=[32, 64, 128]")
    grid = _grid(axes)
    rows = []
    iterator = grid
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(grid, desc="ablation", unit="composition")
    for labels, knobs in iterator:
        row = AblationRow(setting=labels)
        try:
            if isinstance(base, TokenizerSpec):
                composition = base.replace(**knobs)
            else:
                composition = named_spec(base, **knobs)
            if not isinstance(composition, TokenizerSpec):
                raise ConfigError(f"ablate measures tokenizers; {base!r} is not one")
            for key, value in measure(composition, throughput=throughput, batch=batch, repeats=repeats,
                                      device=device).items():
                setattr(row, key, value)
        except TokenkitError as err:
            row.error = str(err).splitlines()[0]
        rows.append(row)
    return AblationResult(base=base if isinstance(base, str) else "spec", axes=list(axes), rows=rows)
