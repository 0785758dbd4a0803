"""Evaluation results: metrics with their provenance, as JSON and as a markdown table."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import torch

from tokenkit.version import __version__
from tokenkit.weights.io import atomic_write

METRIC_LABELS: dict[str, str] = {
    "rfid": "rFID", "fid": "FID", "sfid": "sFID", "is": "IS", "is_std": "IS std", "kid": "KID", "kid_std": "KID std",
    "precision": "precision", "recall": "recall", "psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS",
    "usage": "codebook usage", "perplexity": "perplexity", "bits_per_image": "bits / image",
}
"""How each metric key is shown in tables."""

METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "fid": ("rfid",), "is": ("is",), "kid": ("kid",), "pr": ("precision", "recall"), "sfid": ("sfid",),
    "psnr": ("psnr",), "ssim": ("ssim",), "lpips": ("lpips",), "usage": ("usage", "perplexity"),
}
"""Result keys (table columns) of each metric name of ``evaluate_reconstruction``."""


@dataclasses.dataclass
class EvaluationResult:
    """Metrics of one evaluation and everything needed to reproduce them.

    Attributes:
        metrics: ``{"rfid": ..., "is": ..., "psnr": ...}`` (keys in ``METRIC_LABELS``).
        info: Provenance: ``task``, ``protocol`` (all its settings), ``features`` (Inception weights
            source, file and fingerprint), ``num_images``, ``skipped``, ``model``, ``weights``,
            ``seed``, ``precision``, ``tokenkit``, ``torch``, ``device``, ``date``, ``data``, ``reference``.
        notes: Human-readable remarks (metrics left out and why, small-sample warnings).
    """

    metrics: dict[str, float]
    info: dict[str, Any]
    notes: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable)."""
        return {"metrics": self.metrics, "info": self.info, "notes": self.notes}

    def to_json(self) -> str:
        """The result as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_markdown(self) -> str:
        """A metrics table followed by the provenance lines.

        Examples:
            >>> from tokenkit.evaluation.result import EvaluationResult
            >>> print(EvaluationResult({"rfid": 1.234567, "psnr": 20.0}, {"protocol": {"name": "titok"}}).to_markdown())
            | metric | value |
            | --- | --- |
            | rFID | 1.2346 |
            | PSNR (dB) | 20.0000 |
            <BLANKLINE>
            protocol: titok
        """
        lines = ["| metric | value |", "| --- | --- |"]
        for key, value in self.metrics.items():
            lines.append(f"| {METRIC_LABELS.get(key, key)} | {format_value(value)} |")
        lines.append("")
        lines.extend(provenance_lines(self.info))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def save(self, folder: str | os.PathLike, name: str = "result") -> tuple[Path, Path]:
        """Write ``<name>.json`` and ``<name>.md`` into ``folder`` (atomically); returns both paths."""
        folder = Path(folder)
        json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
        atomic_write(json_path, lambda tmp: Path(tmp).write_text(self.to_json() + "\n"))
        atomic_write(md_path, lambda tmp: Path(tmp).write_text(self.to_markdown() + "\n"))
        return json_path, md_path

    @classmethod
    def load(cls, path: str | os.PathLike) -> EvaluationResult:
        """Read a ``result.json`` written by ``save``."""
        data = json.loads(Path(path).read_text())
        return cls(data["metrics"], data["info"], data.get("notes", []))


def format_value(value: Any) -> str:
    """Four decimals for floats (``n/a`` for NaN / None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def provenance_lines(info: dict[str, Any]) -> list[str]:
    """The provenance as ``key: value`` lines (protocol by name, long values shortened)."""
    lines = []
    for key, value in info.items():
        if key == "protocol" and isinstance(value, dict):
            value = value.get("name")
        elif key == "features" and isinstance(value, dict):
            value = (f"{value.get('source')} {value.get('path') or ''} "
                     f"(features sha256 {str(value.get('features_sha256'))[:16]}...)").replace("  ", " ")
        elif key in ("model", "generator", "tokenizer") and isinstance(value, dict):
            spec = value.get("spec") or {}
            name = value.get("name") or ", ".join(f"{k}={v.get('part')}" for k, v in spec.items()
                                                    if isinstance(v, dict) and "part" in v)
            value = f"{name} (weights: {value.get('weights')}, sha256 {str(value.get('weights_sha256'))[:16]}...)"
        elif key == "reference" and isinstance(value, dict):
            value = (f"{value.get('path') or value.get('source')} ({value.get('count')} images, protocol "
                     f"{value.get('protocol')})")
        elif isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
            value = value if len(value) <= 160 else value[:157] + "..."
        lines.append(f"{key}: {value}")
    return lines


def state_dict_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (sorted keys, raw tensor bytes): a fingerprint of its weights."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        t = tensor.detach().cpu().contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def environment() -> dict[str, Any]:
    """tokenkit / torch versions, platform and date."""
    return {"tokenkit": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}
