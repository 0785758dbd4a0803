"""Ablations as grids of compositions: cost (and quality) of every combination of knob values and part swaps.

    result = tk.ablate("titok-tiny", num_tokens=[8, 16, 32], quantizer=["vq", "fsq"])
    print(result.to_markdown()); result.to_csv("ablation.csv"); result.plot("ablation.png")

Each combination is expanded into a spec (so an invalid one is reported, not
fatal) and measured: parameters, tokens and bits per image, FLOPs per image of
encoding and decoding (``torch.utils.flop_counter`` on the ``meta`` device,
so no memory or compute is spent) and, optionally, measured encode/decode
throughput on real tensors: the median images/s of several timed calls after a
warm-up, with its spread (see [`time_calls`][tokenkit.ablation.time_calls]).

With ``eval_data`` every composition is also evaluated with
[`evaluate_reconstruction`][tokenkit.evaluation.runner.evaluate_reconstruction]
(PSNR, rFID, LPIPS, ...), with the weights given per setting in ``weights``;
a composition without weights is evaluated with random weights and its
``weights`` column says ``random``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from tokenkit.api import build, check_knobs
from tokenkit.api import spec as named_spec
from tokenkit.errors import ConfigError, TokenkitError
from tokenkit.evaluation.rate_distortion import HIGHER_IS_BETTER, SharedEvaluation, grouped_notes
from tokenkit.evaluation.result import METRIC_LABELS
from tokenkit.flops import count_flops
from tokenkit.specs import Part, TokenizerSpec
from tokenkit.validation import image_shape


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
    """Images per second of ``encode``: batch size over the median wall time of the timed calls."""
    encode_spread: float | None = None
    """Relative interquartile range of the encode call times ([`Timing.spread`][tokenkit.ablation.Timing.spread])."""
    decode_images_per_s: float | None = None
    """Images per second of ``decode`` (codes to images), as for encode."""
    decode_spread: float | None = None
    """Relative interquartile range of the decode call times."""
    timed_calls: int | None = None
    """Timed calls behind each of the two rates (the fewer of encode's and decode's)."""
    error: str | None = None
    weights: str | None = None
    """Weights source of the quality columns (``"random"`` when none was given; ``None``: not evaluated)."""
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    """Quality of the reconstructions (``psnr``, ``rfid``, ``lpips``, ...), from ``evaluate_reconstruction``."""
    notes: list[str] = dataclasses.field(default_factory=list)
    """The evaluation's notes (metrics left out, small-sample warnings)."""

    @property
    def label(self) -> str:
        """``axis=value`` pairs, comma separated."""
        return ", ".join(f"{k}={v}" for k, v in self.setting.items())

    @property
    def random_weights(self) -> bool:
        """Whether the quality columns were measured with randomly initialised weights."""
        return self.weights == "random"


COLUMNS = ("parameters", "tokens_per_image", "bits_per_image", "gflops_encode", "gflops_decode",
           "encode_images_per_s", "encode_spread", "decode_images_per_s", "decode_spread", "error")
SPREAD_COLUMNS = frozenset({"encode_spread", "decode_spread"})


def _fmt(value: Any, column: str = "") -> str:
    if value is None:
        return ""
    if column in SPREAD_COLUMNS:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclasses.dataclass
class AblationResult:
    """The rows of an ablation, with table and plot writers.

    Attributes:
        base: The base model name (``"spec"`` for a spec).
        axes: Axis names, in order.
        rows: One [`AblationRow`][tokenkit.ablation.AblationRow] per composition.
        quality: Quality columns (metric keys such as ``psnr``, ``rfid``, ``lpips``) when the
            grid was evaluated on images; empty otherwise.
        notes: Remarks printed under the markdown table (random weights, metrics left out).
        timing: How the images/s columns were measured (``batch``, ``warmup``, ``repeats``,
            ``min_time``, ``device``, ``threads``); ``None`` when throughput was not measured.
    """

    base: str
    axes: list[str]
    rows: list[AblationRow]
    quality: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    timing: dict[str, Any] | None = None

    def timing_note(self) -> str | None:
        """One line saying how the images/s columns were measured, or ``None`` without timings.

        Examples:
            >>> from tokenkit.ablation import AblationResult, AblationRow
            >>> row = AblationRow({"num_tokens": "8"}, encode_images_per_s=900.0, encode_spread=0.04,
            ...                   decode_images_per_s=700.0, decode_spread=0.02, timed_calls=12)
            >>> timing = dict(batch=4, warmup=2, repeats=5, min_time=1.0, device="cpu", threads=2)
            >>> print(AblationResult("titok-tiny", ["num_tokens"], [row], timing=timing).timing_note())
            timing: images/s = batch 4 / median call time of 12 timed calls (at least 5 and 1 s per measurement, after 2 warm-up calls), cpu, 2 threads; spread = interquartile range of the call times / median
        """
        if self.timing is None:
            return None
        t = self.timing
        calls = [r.timed_calls for r in self.rows if r.timed_calls]
        if not calls:
            return None
        count = f"{min(calls)}" if min(calls) == max(calls) else f"{min(calls)}-{max(calls)}"
        floor = f"at least {t['repeats']}" + (f" and {t['min_time']:g} s per measurement" if t["min_time"] else "")
        return (f"timing: images/s = batch {t['batch']} / median call time of {count} timed calls ({floor}, "
                f"after {t['warmup']} warm-up calls), {t['device']}, {t['threads']} threads; "
                "spread = interquartile range of the call times / median")

    def _columns(self, csv: bool = False) -> list[str]:
        """Cost columns (and ``timed_calls`` in the CSV), then ``weights`` and the quality columns when
        evaluated, then ``error``."""
        cost = [*COLUMNS[:-1], "timed_calls"] if csv else list(COLUMNS[:-1])
        if not self.quality:
            return [*cost, "error"]
        return [*cost, "weights", *self.quality, "error"]

    @staticmethod
    def _value(row: AblationRow, column: str) -> Any:
        if column in COLUMNS or column in ("weights", "timed_calls"):
            return getattr(row, column)
        return row.metrics.get(column)

    def note_lines(self) -> list[str]:
        """The notes under the table: random weights, metrics left out, then each row's notes (once)."""
        lines = [f"note: {n}" for n in self.notes]
        random = [r.label for r in self.rows if r.random_weights]
        if random:
            every = len(random) == len(self.rows)
            lines.append(f"note: {'every row' if every else f'{len(random)} of {len(self.rows)} rows'} "
                         "(weights = random) evaluated with randomly initialised weights: their quality "
                         f"columns ({', '.join(self.quality)}) say nothing about trained models; "
                         "give weights={label: source}")
        lines.extend(grouped_notes([(r.label, r.notes) for r in self.rows], "all rows"))
        return lines

    def to_markdown(self) -> str:
        """A markdown table (one row per composition), and the notes under it when it was evaluated.

        Examples:
            >>> from tokenkit.ablation import AblationResult, AblationRow
            >>> row = AblationRow({"num_tokens": "8"}, parameters=1000, bits_per_image=64.0, weights="random",
            ...                   metrics={"psnr": 9.75})
            >>> print(AblationResult("titok-tiny", ["num_tokens"], [row], quality=["psnr"]).to_markdown())
            | num_tokens | parameters | tokens_per_image | bits_per_image | gflops_encode | gflops_decode | encode_images_per_s | encode_spread | decode_images_per_s | decode_spread | weights | psnr | error |
            |---|---|---|---|---|---|---|---|---|---|---|---|---|
            | 8 | 1,000 |  | 64 |  |  |  |  |  |  | random | 9.75 |  |
            <BLANKLINE>
            note: every row (weights = random) evaluated with randomly initialised weights: their quality columns (psnr) say nothing about trained models; give weights={label: source}
        """
        head = [*self.axes, *self._columns()]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.rows:
            cells = [row.setting[a] for a in self.axes] + [_fmt(self._value(row, c), c) for c in self._columns()]
            lines.append("| " + " | ".join(cells) + " |")
        notes = self.note_lines() if self.quality else []
        timing = self.timing_note()
        notes = ([f"note: {timing}"] if timing else []) + notes
        return "\n".join(lines + ([""] + notes if notes else []))

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV (raw numbers: spreads as fractions, plus ``timed_calls``; with quality
        columns, a last ``notes`` column)."""
        columns = self._columns(csv=True)
        with open(path, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow([*self.axes, *columns] + (["notes"] if self.quality else []))
            for row in self.rows:
                values = [self._value(row, c) for c in columns]
                writer.writerow([row.setting[a] for a in self.axes] + ["" if v is None else v for v in values]
                                + ([" | ".join(row.notes)] if self.quality else []))

    def plot(self, path: str | os.PathLike) -> None:
        """Bar charts of parameters, GFLOPs per image, throughput and (when evaluated) each quality
        metric per composition, as a PNG; rows with random weights are marked under their label."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in self.rows if r.error is None]
        if not rows:
            raise ConfigError("no valid composition to plot")
        labels = [r.label.replace(", ", "\n") + ("\n(random weights)" if r.random_weights else "") for r in rows]
        x = range(len(rows))
        panels = [("parameters (M)", [[(r.parameters or 0) / 1e6 for r in rows]], [None]),
                  ("GFLOPs per image", [[r.gflops_encode or 0 for r in rows], [r.gflops_decode or 0 for r in rows]],
                   ["encode", "decode"]),
                  ("bits per image", [[r.bits_per_image or 0 for r in rows]], [None])]
        errors: dict[str, list[list[float]]] = {}
        if any(r.encode_images_per_s for r in rows):
            title = "images / s\n(bars: interquartile range)"
            panels.append((title, [[r.encode_images_per_s or 0 for r in rows],
                                   [r.decode_images_per_s or 0 for r in rows]], ["encode", "decode"]))
            # the rate at the first / third quartile of the call times, around the median rate
            errors[title] = [[(r.encode_images_per_s or 0) * (r.encode_spread or 0) / 2 for r in rows],
                             [(r.decode_images_per_s or 0) * (r.decode_spread or 0) / 2 for r in rows]]
        for key in self.quality:
            values = [r.metrics.get(key, math.nan) for r in rows]
            if all(math.isnan(v) for v in values):
                continue  # not measured (e.g. its weights are missing): said in the notes
            better = {True: "\nhigher is better", False: "\nlower is better"}.get(HIGHER_IS_BETTER.get(key), "")
            panels.append((METRIC_LABELS.get(key, key) + better, [values], [None]))
        fig, axes = plt.subplots(len(panels), 1, figsize=(max(6, 1.1 * len(rows) + 2), 2.6 * len(panels)),
                                 sharex=True, squeeze=False)
        for ax, (title, series, names) in zip(axes[:, 0], panels):
            width = 0.8 / len(series)
            for i, (values, name) in enumerate(zip(series, names)):
                yerr = errors[title][i] if title in errors else None
                ax.bar([p + (i - (len(series) - 1) / 2) * width for p in x], values, width, label=name,
                       yerr=yerr, capsize=3 if yerr else 0)
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
    return count_flops(lambda: fn(*args))[0] / 1e9


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall times of repeated calls, after a warm-up (see [`time_calls`][tokenkit.ablation.time_calls]).

    Examples:
        >>> t = Timing((0.10, 0.11, 0.12, 0.13, 0.50), warmup=2)
        >>> round(t.median, 3), round(t.spread, 3), t.rate(4) == 4 / t.median
        (0.12, 0.167, True)
    """

    times: tuple[float, ...]
    """Seconds per timed call, in call order."""
    warmup: int = 0
    """Untimed warm-up calls made before."""

    @property
    def median(self) -> float:
        """Median seconds per call."""
        return statistics.median(self.times)

    def quartiles(self) -> tuple[float, float]:
        """First and third quartile of the call times (both the single time for one call)."""
        if len(self.times) < 2:
            return self.times[0], self.times[0]
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def spread(self) -> float:
        """Relative interquartile range ``(Q3 - Q1) / median`` of the call times (0.05: the middle half of
        the calls lie within 5% of the median's size; 0 for one call). Robust to a single outlier."""
        q1, q3 = self.quartiles()
        return (q3 - q1) / self.median

    def rate(self, items: float) -> float:
        """``items`` per second at the median call time (images/s for a batch of ``items``)."""
        return items / self.median


def time_calls(fn: Callable[[], Any], *, warmup: int = 2, repeats: int = 5, min_time: float = 0.0,
               max_repeats: int = 1000, sync: Callable[[], Any] | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then at least ``repeats`` timed calls, continuing until the
    timed calls add up to ``min_time`` seconds (at most ``max_repeats`` calls).

    A fast call is timed many times (``min_time``), so a noisy machine moves its median
    little; a slow one ``repeats`` times. ``sync`` (e.g. ``torch.cuda.synchronize``) is
    called before each clock reading, for asynchronous devices.

    Examples:
        >>> t = time_calls(lambda: sum(range(1000)), warmup=1, repeats=3)
        >>> len(t.times) >= 3 and t.warmup == 1 and t.spread >= 0
        True
    """
    if repeats < 1 or warmup < 0 or max_repeats < repeats:
        raise ConfigError(f"time_calls needs repeats >= 1, warmup >= 0 and max_repeats >= repeats; got "
                          f"repeats={repeats}, warmup={warmup}, max_repeats={max_repeats}")
    sync = sync or (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_time and len(times) < max_repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return Timing(tuple(times), warmup)


def measure(spec: TokenizerSpec, *, throughput: bool = True, batch: int = 4, repeats: int = 5, warmup: int = 2,
            min_time: float = 1.0, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Parameters, tokens and bits per image, GFLOPs per image and (optionally) images/s of ``spec``.

    The images/s are medians over timed calls made by [`time_calls`][tokenkit.ablation.time_calls]
    (``warmup``, ``repeats``, ``min_time``), with their spreads.
    """
    meta = build(spec, device="meta")
    (height, width), channels = image_shape(meta.image_size), meta.in_channels
    k, q = meta.codebook_size, meta.quantizer.num_codebooks
    out: dict[str, Any] = {
        "parameters": sum(p.numel() for p in meta.parameters()),
        "tokens_per_image": meta.num_tokens,
        "bits_per_image": None if k is None else meta.num_tokens * q * math.log2(k),
        "gflops_encode": _gflops(meta.encoder, torch.empty(1, channels, height, width, device="meta")),
        "gflops_decode": _gflops(meta._decode, torch.empty(1, meta.num_tokens, meta.code_dim, device="meta")),
    }
    if throughput:
        device = torch.device(device)
        model = build(spec, device=device).eval()
        images = torch.rand(batch, channels, height, width, device=device)
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        timing = dict(warmup=warmup, repeats=repeats, min_time=min_time, sync=sync)
        with torch.no_grad():
            codes = model.encode(images).codes
            enc = time_calls(lambda: model.encode(images), **timing)
            dec = time_calls(lambda: model.decode(codes), **timing)
        out.update(encode_images_per_s=enc.rate(batch), encode_spread=enc.spread,
                   decode_images_per_s=dec.rate(batch), decode_spread=dec.spread,
                   timed_calls=min(len(enc.times), len(dec.times)))
    return out


def _weights_by_row(weights: Any, rows: list[AblationRow], axes: Sequence[str]) -> dict[int, Any]:
    """``{row index: weights source}`` from ``weights`` (a mapping of labels, or one source for one row)."""
    if weights is None:
        return {}
    if not isinstance(weights, Mapping):
        if len(rows) != 1:
            raise ConfigError(f"one weights source applies to a one-composition grid; this grid has {len(rows)}: "
                              "give weights={label: source} with labels among " + "; ".join(r.label for r in rows))
        return {0: weights}
    names: dict[str, int] = {}
    for i, row in enumerate(rows):
        names[row.label] = i
        names.setdefault(", ".join(row.setting[a] for a in axes), i)  # "8, vq" for "num_tokens=8, quantizer=vq"
    unknown = [str(k) for k in weights if str(k) not in names]
    if unknown:
        raise ConfigError(f"weights given for unknown setting(s) {', '.join(map(repr, unknown))}; the settings are "
                          + "; ".join(repr(r.label) for r in rows))
    out: dict[int, Any] = {}
    for key, source in weights.items():
        i = names[str(key)]
        if i in out:
            raise ConfigError(f"weights given twice for {rows[i].label!r}")
        out[i] = source
    return out


def _evaluate_row(row: AblationRow, composition: TokenizerSpec, source: Any, evaluator: Any,
                  device: str | torch.device) -> None:
    """Fill the quality columns of ``row`` (``source``: weights file / folder / Hub id, a built model or ``None``)."""
    if source is None:  # the weights column says "random", and the note under the table explains it
        model, row.weights = build(composition, device=device), "random"
    elif isinstance(source, torch.nn.Module):
        if getattr(source, "spec", None) != composition:
            raise ConfigError(f"the model given as weights for {row.label!r} is another composition than the row's")
        model, row.weights = source, "in memory"
    else:
        model, row.weights = build(composition, pretrained=source, device=device), str(source)
    result = evaluator(model)
    row.metrics = {k: v for k, v in result.metrics.items() if k != "bits_per_image"}
    row.notes.extend(result.notes)


def ablate(base: str | TokenizerSpec, *, throughput: bool = True, batch: int = 4, repeats: int = 5,
           warmup: int = 2, min_time: float = 1.0, device: str | torch.device = "cpu", progress: bool = False,
           eval_data: Any = None, weights: Any = None, eval_metrics: Sequence[str] | str | None = None,
           protocol: Any = "titok", num_images: int | None = None, eval_batch_size: int = 50,
           inception_weights: Any = None, evaluate_random: bool = True, **axes: Any) -> AblationResult:
    """Measure every combination of the ``axes`` applied to ``base``.

    Args:
        base: A tokenizer model name (axes are its knobs: ``num_tokens``,
            ``encoder_size``, ``image_size``, ``quantizer``, ...) or a
            [`TokenizerSpec`][tokenkit.specs.TokenizerSpec] (axes are its fields:
            ``quantizer=[tk.Part("vq"), tk.Part("fsq")]``).
        throughput: Also time encode and decode on real tensors (builds each model).
        batch: Images per timed call.
        repeats: Least number of timed calls per measurement (the median is reported,
            with the spread of the call times in ``encode_spread`` / ``decode_spread``).
        warmup: Untimed calls before each measurement.
        min_time: Keep timing a measurement until its timed calls add up to this many
            seconds (at most 1,000 calls), so a fast composition gets many calls.
        device: Device for the timings (and the evaluation).
        progress: Show a tqdm progress bar.
        eval_data: Real images to evaluate every composition on (folder, files, ``.npz``,
            ``.tar`` shards, a dataset or a tensor ``(B, 3, H, W)`` in [0, 1]); adds the
            ``weights`` column and one column per metric. ``None``: cost only.
        weights: Weights of the compositions: a mapping from a setting's label
            (``"num_tokens=8, quantizer=vq"``, or just its values ``"8, vq"``) to a weights
            source (file, saved folder, Hub id, or a built tokenizer of that composition), or
            one source for a one-composition grid. A composition without weights is evaluated
            with random weights: its ``weights`` column says ``random`` and a note says so.
        eval_metrics: Metrics of ``evaluate_reconstruction`` (``psnr, lpips, fid, ssim, usage,
            kid, ...``). Default: ``psnr, fid``, each left out with a note when its weights are
            missing (an explicitly requested one raises instead).
        protocol: Evaluation protocol (``"titok"``, ``"adm"``, ``"clean"``).
        num_images: Evaluate on the first ``num_images`` images only.
        eval_batch_size: Images per evaluation batch.
        inception_weights: Inception weights file, ``None`` (looked up) or a built feature part.
        evaluate_random: Also evaluate the compositions without weights (with random weights,
            marked ``random``). ``False`` leaves their quality columns empty (saves the time
            of evaluating untrained models, e.g. in a large grid with a few trained cells).
        **axes: ``name=[values]``, or ``name={label: {knob: value, ...}}`` for a
            setting that changes several knobs at once (e.g. encoder and decoder size).

    Returns:
        [`AblationResult`][tokenkit.ablation.AblationResult]; invalid combinations
        (and compositions whose evaluation failed, e.g. weights that do not fit) are
        kept as rows with ``error`` set.

    Raises:
        ConfigError: No axis, ``weights`` without ``eval_data``, weights for a setting
            that is not in the grid, or ``repeats < 1`` / ``warmup < 0`` / ``min_time < 0``.

    Examples:
        >>> import tokenkit as tk
        >>> result = tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False)
        >>> print([row.bits_per_image for row in result.rows])
        [32.0, 64.0]
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     result = tk.ablate("titok-tiny", num_tokens=[4, 8], throughput=False, eval_metrics="psnr",
        ...                        eval_data=tk.data.sample_images(32, seed=0))
        >>> result.quality, result.rows[0].weights, result.rows[1].weights
        (['psnr'], 'random', 'random')
    """
    if not axes:
        raise ConfigError("ablate needs at least one axis, e.g. num_tokens=[32, 64, 128]")
    if throughput and (repeats < 1 or warmup < 0 or min_time < 0):
        raise ConfigError(f"timing needs repeats >= 1, warmup >= 0 and min_time >= 0; got repeats={repeats}, "
                          f"warmup={warmup}, min_time={min_time}")
    if weights is not None and eval_data is None:
        raise ConfigError("weights only matter for the quality columns: give eval_data (real images) too")
    grid = _grid(axes)
    names = {knob for _, knobs in grid for knob in knobs}
    if isinstance(base, TokenizerSpec):
        fields = {f.name for f in dataclasses.fields(TokenizerSpec)}
        if names - fields:
            raise ConfigError(f"axes {', '.join(sorted(names - fields))} are not fields of a TokenizerSpec "
                              f"({', '.join(sorted(fields))}); give a model name to ablate over its knobs")
    else:
        check_knobs(base, names)  # a mistyped knob fails before any composition is built
    rows = [AblationRow(setting=labels) for labels, _ in grid]
    sources = _weights_by_row(weights, rows, list(axes))
    evaluator = None
    if eval_data is not None:
        evaluator = SharedEvaluation(eval_data, metrics=eval_metrics, default=("psnr", "fid"), protocol=protocol,
                                     num_images=num_images, batch_size=eval_batch_size,
                                     inception_weights=inception_weights, device=device, progress=False)
    iterator = zip(rows, grid)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(grid), desc="ablation", unit="composition")
    for i, (row, (_, knobs)) in enumerate(iterator):
        try:
            if isinstance(base, TokenizerSpec):
                composition = base.replace(**knobs)
            else:
                composition = named_spec(base, **knobs)
            if not isinstance(composition, TokenizerSpec):
                raise ConfigError(f"ablate measures tokenizers; {base!r} is not one")
            for key, value in measure(composition, throughput=throughput, batch=batch, repeats=repeats,
                                      warmup=warmup, min_time=min_time, device=device).items():
                setattr(row, key, value)
            if evaluator is not None and (evaluate_random or i in sources):
                _evaluate_row(row, composition, sources.get(i), evaluator, device)
        except TokenkitError as err:
            row.error = str(err).splitlines()[0]
    notes = [] if evaluator is None else list(evaluator.notes)
    if evaluator is not None and not evaluate_random and len(sources) < len(rows):
        notes.append(f"{len(rows) - len(sources)} composition(s) without weights not evaluated "
                     "(evaluate_random=False): their quality columns are empty")
    random = sum(row.random_weights for row in rows)
    if random:
        import warnings

        warnings.warn(f"ablate: {random} of {len(rows)} compositions evaluated with random weights (no weights "
                      "given for them): their quality columns say nothing about trained models", UserWarning,
                      stacklevel=2)
    timing = None
    if throughput:
        timing = dict(batch=batch, warmup=warmup, repeats=repeats, min_time=min_time, device=str(device),
                      threads=torch.get_num_threads())
    return AblationResult(base=base if isinstance(base, str) else "spec", axes=list(axes), rows=rows,
                          quality=[] if evaluator is None else evaluator.columns,
                          notes=notes, timing=timing)
