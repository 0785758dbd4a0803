"""Rate-distortion in one call: reconstruction quality against bits per image.

    result = rate_distortion(tok, "val-images/")                # one tail-drop tokenizer: k = 1, 2, 4, ..., N
    result = rate_distortion({"VQ": "runs/vq/model", "FSQ": "runs/fsq/model"}, "val-images/")
    print(result.to_markdown()); result.plot("rd.png"); result.save("rd/")

Every point of the curve is one
[`evaluate_reconstruction`][tokenkit.evaluation.runner.evaluate_reconstruction]
call (same protocol, same images, same Inception network), so its numbers are
the ones a single evaluation would give. The expensive part that all points
share is done once: the Inception network is built once, and the features of
the real images are computed once per image size with
[`reference_statistics`][tokenkit.evaluation.runner.reference_statistics]
(pool features kept when KID or precision / recall is asked for) and passed
to every point as ``reference=``; the rFID equals the one of a pass that
reads the real images itself.

A point's rate is ``k * Q * log2(K)`` bits per image for ``k`` decoded tokens
of ``Q`` ids each from a codebook of ``K`` (``None`` for a continuous
bottleneck, whose rate is not a count of bits).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from tokenkit.api import build, from_pretrained
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.evaluation.inception_weights import missing_weights_message
from tokenkit.evaluation.protocols import get_protocol
from tokenkit.evaluation.reference import ReferenceStatistics, load_reference
from tokenkit.evaluation.result import METRIC_KEYS, METRIC_LABELS, EvaluationResult
from tokenkit.evaluation.runner import (
    INCEPTION_METRICS,
    RECONSTRUCTION_METRICS,
    choose_metrics,
    evaluate_reconstruction,
    random_weights_note,
    reference_statistics,
)
from tokenkit.factory import build_part
from tokenkit.metrics import lpips
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.precision import resolve_precision
from tokenkit.specs import TokenizerSpec
from tokenkit.weights.io import atomic_write

DEFAULT_METRICS = ("psnr", "lpips", "fid")
"""Metrics of ``rate_distortion`` when none are given (an unavailable one is left out with a note)."""

HIGHER_IS_BETTER: dict[str, bool] = {
    "psnr": True, "ssim": True, "is": True, "precision": True, "recall": True, "usage": True, "perplexity": True,
    "rfid": False, "lpips": False, "kid": False, "sfid": False,
}
"""Direction of each column (shown as an arrow in tables and plots)."""



def metric_columns(metrics: Sequence[str]) -> list[str]:
    """The result keys of ``metrics`` in order (``fid`` -> ``rfid``, ``pr`` -> ``precision, recall``, ...)."""
    return [key for m in metrics for key in METRIC_KEYS[m]]


def column_title(key: str) -> str:
    """``PSNR (dB) ↑``, ``rFID ↓``, ...: the metric's label and its better direction."""
    arrow = {True: " ↑", False: " ↓"}.get(HIGHER_IS_BETTER.get(key), "")
    return METRIC_LABELS.get(key, key) + arrow


def _first_line(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class SharedEvaluation:
    """``evaluate_reconstruction`` of many tokenizers on the same images, sharing the expensive parts.

    The Inception network is built once, and the features of the real images are computed
    once per image size (``reference_statistics``) and passed to every evaluation as
    ``reference=``. A metric that was not asked for explicitly (``metrics=None``) and whose
    weights are missing here (Inception for FID, VGG16 for LPIPS) is left out with a note;
    an explicitly asked one raises.

    Args:
        data: Image folder, files, ``.npz``, ``.tar`` shards, a dataset or an image tensor
            ``(B, 3, H, W)`` in [0, 1] (read once per evaluation, plus once for the reference).
        metrics: Metric names (``fid, is, kid, pr, sfid, psnr, ssim, lpips, usage``) or ``None``.
        default: The metrics when ``metrics`` is ``None``.
        protocol: Protocol preset or object.
        reference: ``None`` (the real images of ``data``), reference statistics (an object or an
            ``.npz`` file, read once), or other real images (their features computed once per size).
        num_images: Only the first ``num_images`` of ``data``.
        batch_size: Images per batch.
        inception_weights: Inception weights file, ``None`` (looked up) or a built feature part.
        device: Where the Inception runs (and the tokenizers are moved).
        precision: Tokenizer arithmetic: ``auto`` (default, see
            [`resolve_precision`][tokenkit.precision.resolve_precision]), ``fp32``, ``bf16`` or ``fp16``.
        num_workers: DataLoader workers.
        progress: Progress bars.
    """

    def __init__(self, data: Any, *, metrics: Sequence[str] | str | None, default: Sequence[str],
                 protocol: Any = "titok", reference: Any = None, num_images: int | None = None,
                 batch_size: int = 50, inception_weights: Any = None, device: torch.device | str = "cpu",
                 precision: str = "auto", num_workers: int = 0, progress: bool = True) -> None:
        self.data, self.reference, self.num_images, self.batch_size = data, reference, num_images, batch_size
        self.device, self.precision, self.num_workers, self.progress = torch.device(device), precision, \
            num_workers, progress
        resolve_precision(precision, self.device)  # a bad name fails before any work
        self.protocol = get_protocol(protocol)
        self.metrics, self.explicit = choose_metrics(metrics, RECONSTRUCTION_METRICS, default)
        self.requested = list(self.metrics)
        self.notes: list[str] = []
        self.net: torch.nn.Module | None = None
        self._references: dict[int, Any] = {}
        if num_images is not None and num_images < 1:
            raise ConfigError(f"num_images must be positive, got {num_images}")
        inception = [m for m in self.metrics if m in INCEPTION_METRICS]
        if inception:
            if isinstance(inception_weights, torch.nn.Module):
                self.net = inception_weights.to(self.device)
            else:
                try:
                    self.net = build_part("feature", self.protocol.feature_part(inception_weights),
                                          device=self.device).eval()
                except WeightsError as err:
                    if self.explicit:
                        raise
                    self.notes.append(f"{', '.join(inception)} not computed: {_first_line(err)}")
                    self.metrics = [m for m in self.metrics if m not in INCEPTION_METRICS]
        if "is" in self.metrics and self.net is not None and getattr(self.net, "fc", True) is None:
            if self.explicit:
                raise WeightsError(missing_weights_message(need_logits=True))
            self.notes.append("IS not computed: these Inception weights have no classifier")
            self.metrics.remove("is")
        if "lpips" in self.metrics:  # checked once here, so that no evaluation fails half-way
            try:
                lpips(torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 64, 64))
            except ConfigError as err:
                if self.explicit:
                    raise
                self.notes.append(f"LPIPS not computed: {_first_line(err)}")
                self.metrics.remove("lpips")
        if not self.metrics:
            raise ConfigError(f"none of the metrics {', '.join(self.requested)} can be computed here: "
                              + "; ".join(self.notes))

    @property
    def columns(self) -> list[str]:
        """Result keys of the requested metrics (those left out included: their cells stay empty)."""
        return metric_columns(self.requested)

    def reference_for(self, size: int) -> Any:
        """The ``reference=`` of every evaluation at image side ``size`` (computed on first use)."""
        if self.net is None or not any(m in INCEPTION_METRICS for m in self.metrics):
            return None
        ref = self.reference
        if isinstance(ref, ReferenceStatistics):
            return ref  # evaluate_reconstruction checks it against the protocol and the network
        if isinstance(ref, (str, os.PathLike)) and str(ref).endswith(".npz") and Path(ref).is_file():
            try:
                self.reference = ref = load_reference(ref)  # read once
                return ref
            except ConfigError:
                pass  # an .npz of images (arr_0) without statistics: its features are computed below
        if size not in self._references:
            self._references[size] = reference_statistics(
                self.data if ref is None else ref, protocol=self.protocol, size=size, batch_size=self.batch_size,
                features=any(m in ("kid", "pr") for m in self.metrics), inception_weights=self.net,
                num_images=self.num_images if ref is None else None, device=self.device,
                num_workers=self.num_workers, progress=self.progress)
        return self._references[size]

    def __call__(self, tokenizer: torch.nn.Module, num_tokens: int | None = None) -> EvaluationResult:
        """``evaluate_reconstruction`` of a built tokenizer (decoding the first ``num_tokens`` tokens)."""
        inception = any(m in INCEPTION_METRICS for m in self.metrics)
        return evaluate_reconstruction(
            tokenizer, self.data, protocol=self.protocol, metrics=self.metrics,
            reference=self.reference_for(tokenizer.image_size), num_images=self.num_images, num_tokens=num_tokens,
            batch_size=self.batch_size, inception_weights=self.net if inception else None, device=self.device,
            precision=self.precision, num_workers=self.num_workers, progress=self.progress)


# ---- results ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class RateDistortionPoint:
    """One evaluated point: a model decoding its first ``tokens`` tokens.

    Attributes:
        label: The model's label (its name, folder, mapping key, or ``model i``).
        tokens: Tokens decoded per image ``k``.
        bits_per_image: ``k * Q * log2(K)``, or ``None`` for a continuous bottleneck.
        metrics: ``{"psnr": ..., "lpips": ..., "rfid": ...}`` (those computed; keys as in
            [`EvaluationResult`][tokenkit.evaluation.result.EvaluationResult]).
        weights: Where the weights came from: a file / folder / Hub id, ``"in memory"``
            for a built model, or ``"random"``.
        notes: The evaluation's notes (random weights, metrics left out, small-sample warnings).
        info: The evaluation's provenance (``EvaluationResult.info``).
    """

    label: str
    tokens: int
    bits_per_image: float | None
    metrics: dict[str, float]
    weights: str
    notes: list[str] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def random_weights(self) -> bool:
        """Whether the model was evaluated with randomly initialised weights."""
        return self.weights == "random"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def grouped_notes(notes_by_name: Sequence[tuple[str, Sequence[str]]], everyone: str) -> list[str]:
    """``note (...): text`` lines: each distinct note once, with the names it applies to
    (``everyone`` when it applies to all)."""
    order: dict[str, list[str]] = {}
    for name, notes in notes_by_name:
        for note in notes:
            names = order.setdefault(note, [])
            if name not in names:
                names.append(name)
    all_names = list(dict.fromkeys(name for name, _ in notes_by_name))
    lines = []
    for note, names in order.items():
        who = everyone if len(all_names) > 1 and names == all_names else "; ".join(names)
        lines.append(f"note ({who}): {note}")
    return lines


@dataclasses.dataclass
class RateDistortionResult:
    """The points of a rate-distortion evaluation, with table, CSV, JSON and plot writers.

    Attributes:
        points: One [`RateDistortionPoint`][tokenkit.evaluation.rate_distortion.RateDistortionPoint]
            per (model, token count), in evaluation order.
        columns: Metric keys shown as columns (those requested; a metric left out has empty cells).
        info: Provenance of the call: ``protocol``, ``metrics``, ``data``, ``num_images``,
            ``features`` (Inception weights), ``reference``, ``seconds``.
        notes: Remarks about the whole call (metrics left out and why).
    """

    points: list[RateDistortionPoint]
    columns: list[str]
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def note_lines(self) -> list[str]:
        """The notes printed under the table: the call's, then each distinct note of the points once,
        with the models (and token counts) it applies to."""
        lines = [f"note: {n}" for n in self.notes]
        order: dict[str, list[RateDistortionPoint]] = {}
        for point in self.points:
            for note in point.notes:
                order.setdefault(note, []).append(point)
        for note, points in order.items():
            if len(points) == len(self.points) > 1:
                who = "all points"
            else:
                parts = []
                for label in dict.fromkeys(p.label for p in points):
                    counts = [p.tokens for p in points if p.label == label]
                    every = sum(p.label == label for p in self.points) == len(counts)
                    parts.append(label if every else f"{label} k={','.join(map(str, counts))}")
                who = "; ".join(parts)
            lines.append(f"note ({who}): {note}")
        return lines

    def rows(self) -> list[dict[str, Any]]:
        """One plain dict per point: ``label, tokens, bits_per_image, <metric keys>, weights``."""
        return [{"label": p.label, "tokens": p.tokens, "bits_per_image": p.bits_per_image,
                 **{key: p.metrics.get(key) for key in self.columns}, "weights": p.weights} for p in self.points]

    def to_markdown(self) -> str:
        """A markdown table (one row per point), the provenance line and the notes.

        Examples:
            >>> from tokenkit.evaluation.rate_distortion import RateDistortionPoint, RateDistortionResult
            >>> points = [RateDistortionPoint("tok", k, 10.0 * k, {"psnr": 20.0 + k}, "runs/tok") for k in (1, 2)]
            >>> print(RateDistortionResult(points, ["psnr"]).to_markdown())
            | model | tokens | bits / image | PSNR (dB) ↑ | weights |
            | --- | ---: | ---: | ---: | --- |
            | tok | 1 | 10 | 21 | runs/tok |
            | tok | 2 | 20 | 22 | runs/tok |
        """
        head = ["model", "tokens", "bits / image", *(column_title(c) for c in self.columns), "weights"]
        lines = ["| " + " | ".join(head) + " |",
                 "| " + " | ".join(["---", "---:", "---:", *["---:"] * len(self.columns), "---"]) + " |"]
        for row in self.rows():
            cells = [row["label"], str(row["tokens"]), _number(row["bits_per_image"]),
                     *(_number(row[c]) for c in self.columns), row["weights"]]
            lines.append("| " + " | ".join(cells) + " |")
        tail = []
        if self.info.get("protocol"):
            tail.append(f"protocol: {self.info['protocol']}, {self.info.get('num_images')} images "
                        f"({self.info.get('data')})")
        tail.extend(self.note_lines())
        return "\n".join(lines + ([""] + tail if tail else []))

    def to_csv(self, path: str | os.PathLike | None = None) -> str:
        """The table as CSV (raw numbers; notes joined by `` | ``); written to ``path`` when given.

        Returns:
            The CSV text.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", "tokens", "bits_per_image", *self.columns, "weights", "notes"])
        for point, row in zip(self.points, self.rows()):
            writer.writerow(["" if v is None else v for v in row.values()] + [" | ".join(point.notes)])
        text = buffer.getvalue()
        if path is not None:
            Path(path).write_text(text)
        return text

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable): ``points``, ``columns``, ``info``, ``notes``."""
        return {"points": [dataclasses.asdict(p) for p in self.points], "columns": self.columns,
                "info": self.info, "notes": self.notes}

    def to_json(self) -> str:
        """The result as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> RateDistortionResult:
        """Read what ``to_json`` wrote."""
        data = json.loads(text)
        return cls([RateDistortionPoint(**p) for p in data["points"]], data["columns"], data.get("info", {}),
                   data.get("notes", []))

    def save(self, folder: str | os.PathLike, name: str = "rate_distortion", *, plot: bool = True) -> list[Path]:
        """Write ``<name>.json``, ``.md``, ``.csv`` and (with ``plot``) ``.png`` into ``folder``.

        Returns:
            The paths written.
        """
        folder = Path(folder)
        texts = {".json": self.to_json(), ".md": self.to_markdown(), ".csv": self.to_csv()}
        paths = []
        for suffix, text in texts.items():
            path = folder / f"{name}{suffix}"
            atomic_write(path, lambda tmp, t=text: Path(tmp).write_text(t if t.endswith("\n") else t + "\n"))
            paths.append(path)
        if plot and any(p.metrics for p in self.points):
            paths.append(folder / f"{name}.png")
            atomic_write(paths[-1], lambda tmp: self.plot(tmp))
        return paths

    def plot(self, path: str | os.PathLike) -> None:
        """One panel per metric against bits per image (log2 axis), one line per model, as a PNG.

        Points of a continuous bottleneck have no bits; when no point has bits the x axis is
        the token count instead, and when only some have, the others are left out (said in
        the figure). Models with random weights are drawn dashed and marked in the legend.

        Raises:
            ConfigError: No point has a metric value to plot.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = [c for c in self.columns if any(p.metrics.get(c) is not None for p in self.points)]
        if not keys:
            raise ConfigError("no metric was computed: nothing to plot")
        with_bits = [p for p in self.points if p.bits_per_image is not None]
        use_bits = bool(with_bits)
        points = with_bits if use_bits else self.points
        left_out = sorted({p.label for p in self.points if p not in points})
        xs = [p.bits_per_image if use_bits else p.tokens for p in points]
        fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys) + 0.6, 3.8), squeeze=False)
        labels = list(dict.fromkeys(p.label for p in points))
        for ax, key in zip(axes[0], keys):
            for i, label in enumerate(labels):
                series = sorted((x, p.metrics[key]) for x, p in zip(xs, points)
                                if p.label == label and p.metrics.get(key) is not None)
                if not series:
                    continue
                random = any(p.random_weights for p in points if p.label == label)
                ax.plot(*zip(*series), marker="o", linestyle="--" if random else "-", color=f"C{i}",
                        label=label + (" (random weights)" if random else ""))
            if max(xs) > 4 * max(min(xs), 1e-9):
                ax.set_xscale("log", base=2)
            ticks = sorted(set(xs))
            if len(ticks) <= 10:  # the measured rates themselves
                ax.set_xticks(ticks, [_number(float(x)) for x in ticks], fontsize=8,
                              rotation=45 if len(ticks) > 5 else 0)
                ax.minorticks_off()
            ax.set_xlabel("bits per image" if use_bits else "tokens per image (continuous bottleneck)")
            better = {True: "higher is better", False: "lower is better"}.get(HIGHER_IS_BETTER.get(key))
            ax.set_ylabel(METRIC_LABELS.get(key, key) + (f" ({better})" if better else ""))
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=8)
        title = f"rate-distortion ({self.info['protocol']}, {self.info.get('num_images')} images)" \
            if self.info.get("protocol") else "rate-distortion"
        if left_out:
            title += f"\nnot plotted (continuous bottleneck, no bits): {', '.join(left_out)}"
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=120, format="png")
        plt.close(fig)


# ---- the call -----------------------------------------------------------------------------------------------------
def default_token_counts(num_tokens: int) -> list[int]:
    """``1, 2, 4, ...`` below ``num_tokens``, then ``num_tokens``.

    Examples:
        >>> default_token_counts(32), default_token_counts(12), default_token_counts(1)
        ([1, 2, 4, 8, 16, 32], [1, 2, 4, 8, 12], [1])
    """
    counts, k = [], 1
    while k < num_tokens:
        counts.append(k)
        k *= 2
    return counts + [num_tokens]


def _is_tokenizer(value: Any) -> bool:
    return isinstance(value, Tokenizer)


def _describe(spec: Any) -> str:
    """``tail-drop(fsq)``, ``vq``, ...: the bottleneck of a spec."""
    part = spec.quantizer
    inner = part.config.get("quantizer") if hasattr(part, "config") else None
    return f"{part.name}({inner.name})" if inner is not None and hasattr(inner, "name") else part.name


def resolve_tokenizer(entry: Any, weights: Any = None, *, label: str | None = None, index: int | None = None,
                      device: torch.device | str | None = None) -> tuple[torch.nn.Module, str, str]:
    """A built tokenizer, its label and its weights source (``"random"``, ``"in memory"`` or the source).

    Args:
        entry: A built tokenizer, a [`TokenizerSpec`][tokenkit.specs.TokenizerSpec], a model
            name, a saved folder / file, a Hub id, or a ``(name or spec, weights)`` pair.
        weights: Weights of a name or spec (file, folder, Hub id).
        label: The label to use (default: the name, the path, or ``model {index}``).
        index: Position of the entry in a list (default label ``model {index} (...)``; ``None``
            for a single model: the bottleneck's name).
        device: Where to build.

    Raises:
        ConfigError: Something that is not a tokenizer.
    """
    if isinstance(entry, tuple):
        if len(entry) != 2 or weights is not None:
            raise ConfigError(f"a model given as a tuple is (name or spec, weights), got {entry!r}")
        entry, weights = entry
    if isinstance(entry, os.PathLike):
        entry = str(entry)
    if _is_tokenizer(entry):
        if weights is not None:
            raise ConfigError("weights only apply to a model given by name or spec, not to a built tokenizer")
        model, source = entry, "in memory"
        described = _describe(entry.spec) if entry.spec is not None else "tokenizer"
        default = described if index is None else f"model {index} ({described})"
    elif isinstance(entry, TokenizerSpec):
        model = build(entry, pretrained=weights, device=device)
        source = str(weights) if weights is not None else "random"
        default = _describe(entry) if index is None else f"spec {index} ({_describe(entry)})"
    elif isinstance(entry, str) and entry:
        default = entry
        if weights is not None:
            model, source = build(entry, pretrained=weights, device=device), str(weights)
        elif Path(entry).exists() or ("/" in entry and not entry.startswith((".", "/"))):
            model, source = from_pretrained(entry, device=device), entry  # a saved folder / file, or a Hub id
        else:
            model, source = build(entry, device=device), "random"
    else:
        raise ConfigError(f"cannot evaluate {entry!r}: give a built tokenizer, a model name, a TokenizerSpec, "
                          "a saved folder / file, or a (name, weights) pair")
    if not _is_tokenizer(model):
        raise ConfigError(f"{label or default!r} is not a tokenizer (rate_distortion needs encode/decode)")
    return model.eval(), label or default, source


def _token_counts(num_tokens: int | Sequence[int] | None, model: Any, label: str, single: bool) -> list[int]:
    n = model.num_tokens
    if num_tokens is None:
        return default_token_counts(n) if single and model.supports_prefix else [n]
    counts = [num_tokens] if isinstance(num_tokens, int) else list(num_tokens)
    if not counts or not all(isinstance(k, int) and not isinstance(k, bool) for k in counts):
        raise ConfigError(f"num_tokens must be a positive int or a non-empty list of them, got {num_tokens!r}")
    bad = [k for k in counts if not 1 <= k <= n]
    if bad:
        raise ConfigError(f"num_tokens {bad} out of range for {label!r}: it has {n} tokens (1 <= num_tokens <= {n})")
    if any(k != n for k in counts) and not model.supports_prefix:
        raise ConfigError(f"num_tokens={num_tokens!r}: {label!r} decodes only all {n} tokens; decoding a prefix "
                          "needs a tail-drop bottleneck (tk.Part('tail-drop', quantizer=...))")
    return sorted(set(counts))


def rate_distortion(models: Any, data: Any, *, num_tokens: int | Sequence[int] | None = None,
                    protocol: Any = "titok", metrics: Sequence[str] | str | None = None, weights: Any = None,
                    reference: Any = None, num_images: int | None = None, batch_size: int = 50,
                    inception_weights: Any = None, device: torch.device | str | None = None,
                    precision: str = "auto", num_workers: int = 0, progress: bool = True) -> RateDistortionResult:
    """Reconstruction quality against bits per image: a prefix sweep of one tokenizer, or several models.

    Args:
        models: One tokenizer that decodes prefixes (a ``tail-drop`` bottleneck; evaluated at
            ``k = 1, 2, 4, ..., N`` tokens), or a list of models (each at its full ``N``), or a
            mapping ``{label: model}``. A model is a built tokenizer, a model name (random
            weights unless ``weights`` / a pair gives them), a ``TokenizerSpec``, a saved
            folder or file, a Hub id, or a ``(name or spec, weights)`` pair.
        data: Real images: folder, files, ``.npz`` (``arr_0``), ``.tar`` shards, a dataset or a
            tensor ``(B, 3, H, W)`` in [0, 1]. Read once per point (and once per image size for the
            Inception reference).
        num_tokens: Token counts to decode (an int or a list), applied to every model; any count
            below ``N`` needs a prefix-capable tokenizer. Default: ``1, 2, 4, ..., N`` for a single
            prefix-capable tokenizer, else ``N``.
        protocol: ``"titok"`` (default), ``"adm"``, ``"clean"`` or a protocol object.
        metrics: Subset of ``fid, is, kid, pr, sfid, psnr, ssim, lpips, usage``. Default:
            ``psnr, lpips, fid``, each left out with a note when its weights are missing here
            (an explicitly requested one raises instead).
        weights: Weights of a single model given by name or spec.
        reference: ``None`` (rFID against the real images of ``data``), reference statistics
            (object or ``.npz``), or other real images.
        num_images: Only the first ``num_images`` images of ``data``.
        batch_size: Images per batch.
        inception_weights: Inception weights file, ``None`` (looked up) or a built feature part
            (e.g. a tiny random ``InceptionV3FID`` in tests).
        device: Where to run (default: the first model's device).
        precision: Tokenizer arithmetic: ``auto`` (default: bf16 autocast where the device runs it
            natively, fp16 on CUDA without bf16, else fp32; see
            [`resolve_precision`][tokenkit.precision.resolve_precision]), ``fp32``, ``bf16`` or ``fp16``.
            The resolved and requested ones are in ``info`` (and in every point's ``info``).
        num_workers: DataLoader workers.
        progress: Progress bars.

    Returns:
        [`RateDistortionResult`][tokenkit.evaluation.rate_distortion.RateDistortionResult]: one point
        per (model, token count) with label, tokens, bits per image, the metrics, the weights
        source (``random`` for random weights) and the evaluation's notes and provenance.

    Raises:
        ConfigError: No model, a token count a model cannot decode, an unknown metric, or a
            model that is not a tokenizer.
        WeightsError: An explicitly requested metric whose weights are missing.

    Examples:
        >>> import tokenkit as tk
        >>> from tokenkit.evaluation.rate_distortion import rate_distortion
        >>> tok = tk.build("titok-tiny", quantizer=tk.Part("tail-drop", quantizer=tk.Part("fsq", levels=(8, 5, 5, 5))))
        >>> result = rate_distortion(tok, tk.data.sample_images(32, seed=0), metrics="psnr", progress=False)
        >>> [(p.tokens, round(p.bits_per_image, 1)) for p in result.points]
        [(1, 10.0), (2, 19.9), (4, 39.9), (8, 79.7)]
        >>> result.points[0].weights, list(result.points[0].metrics)
        ('in memory', ['psnr'])
    """
    started = time.perf_counter()
    single = not isinstance(models, (list, tuple, Mapping))
    if isinstance(models, Mapping):
        entries = [(str(label), entry) for label, entry in models.items()]
    elif single:
        entries = [(None, models)]
    else:
        entries = [(None, entry) for entry in models]
    if not entries:
        raise ConfigError("rate_distortion needs at least one model; got an empty "
                          f"{type(models).__name__}")
    if weights is not None and not single:
        raise ConfigError("weights= applies to a single model; give each model of a list as a (name, weights) pair")
    resolved = []
    for index, (label, entry) in enumerate(entries, start=1):
        model, label, source = resolve_tokenizer(entry, weights, label=label, index=None if single else index,
                                                 device=device)
        resolved.append((model, label, source, _token_counts(num_tokens, model, label, single)))
    labels = [label for _, label, _, _ in resolved]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two models have the same label ({', '.join(labels)}); give them as a mapping "
                          "{label: model}")
    if device is None:
        device = next((p.device for p in resolved[0][0].parameters()), torch.device("cpu"))
    shared = SharedEvaluation(data, metrics=metrics, default=DEFAULT_METRICS, protocol=protocol, reference=reference,
                              num_images=num_images, batch_size=batch_size, inception_weights=inception_weights,
                              device=device, precision=precision, num_workers=num_workers, progress=progress)
    notes = list(shared.notes)
    if single and num_tokens is None and not resolved[0][0].supports_prefix:
        notes.append(f"{resolved[0][1]!r} decodes only all {resolved[0][0].num_tokens} tokens (no tail-drop "
                     "bottleneck): one point")
    points: list[RateDistortionPoint] = []
    last: EvaluationResult | None = None
    for model, label, source, counts in resolved:
        own = []
        if source == "random":
            own.append(random_weights_note("tokenizer", label))
            warnings.warn(own[-1], UserWarning, stacklevel=2)
        k_bits = None if model.codebook_size is None else model.num_codebooks * math.log2(model.codebook_size)
        for k in counts:
            last = shared(model, k)
            last.info["model"] = {**last.info.get("model", {}), "name": label, "weights": source}
            points.append(RateDistortionPoint(
                label=label, tokens=k, bits_per_image=None if k_bits is None else k * k_bits,
                metrics={key: v for key, v in last.metrics.items() if key != "bits_per_image"},
                weights=source, notes=own + list(last.notes), info=last.info))
    assert last is not None
    info = {"protocol": shared.protocol.name, "metrics": shared.metrics, "data": last.info.get("data"),
            "num_images": last.info.get("num_images"), "features": last.info.get("features"),
            "precision": last.info.get("precision"), "precision_requested": precision,
            "reference": "computed once per image size from the data" if reference is None
            else (reference if isinstance(reference, (str, os.PathLike)) else type(reference).__name__),
            "seconds": round(time.perf_counter() - started, 2)}
    return RateDistortionResult(points, shared.columns, info, notes)
