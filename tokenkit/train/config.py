"""Options of a training run: [`TrainConfig`][tokenkit.train.config.TrainConfig], one frozen dataclass whose
fields are JSON values (a recipe's ``train`` section).

Every field is checked for its type (by its type hint, see [`tokenkit.typecheck`][tokenkit.typecheck])
and its range ([`RANGES`][tokenkit.train.config.RANGES]) when the config is created; the error names
the option (``steps must be a positive int, got -3``; in a recipe ``train.steps ...``).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import typing
import warnings
from collections.abc import Mapping
from typing import Any, Literal

from tokenkit.precision import PRECISIONS
from tokenkit.typecheck import NON_NEGATIVE, POSITIVE, OptionError, Range, check_dataclass

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""Experiment trackers ``log_with`` accepts, and the package each needs."""

OnNonfinite = Literal["stop", "skip"]
"""The values of ``on_nonfinite``."""

NONFINITE: tuple[str, ...] = typing.get_args(OnNonfinite)
"""What ``on_nonfinite`` accepts."""

LEGACY_MIXED_PRECISION = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}
"""The deprecated ``mixed_precision`` values (accelerate's names) and the ``precision`` each means."""

Precision = Literal["auto", "fp32", "bf16", "fp16"]
"""The values of ``precision`` (``tokenkit.precision.PRECISIONS``)."""

RANGES: Mapping[str, Range] = {
    **dict.fromkeys(("steps", "batch_size", "grad_accum", "log_every", "sample_count"), POSITIVE),
    **dict.fromkeys(("warmup_steps", "checkpoint_every", "sample_every", "eval_every", "num_workers"), NON_NEGATIVE),
    **dict.fromkeys(("lr", "end_lr", "weight_decay", "clip", "d_lr"), NON_NEGATIVE),
    "ema_decay": Range(0, 1, high_open=True),
    "betas": Range(0, 1, high_open=True),
}
"""Bounds of the numeric [`TrainConfig`][tokenkit.train.config.TrainConfig] fields (of ``betas``: each
item); intervals are steps, 0 meaning never where the field says so."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of a training run (every field is a JSON value).

    Raises:
        OptionError: A field of the wrong type or out of its range
            ([`RANGES`][tokenkit.train.config.RANGES]), or an unknown or missing tracker in ``log_with``.

    Examples:
        >>> import dataclasses
        >>> config = TrainConfig(steps=100, batch_size=8, lr=3e-4, betas=[0.9, 0.96])
        >>> config.steps, config.betas, config.precision  # lists become tuples
        (100, (0.9, 0.96), 'auto')
        >>> dataclasses.replace(config, steps=200).steps
        200
        >>> TrainConfig(steps=-3)
        Traceback (most recent call last):
        ...
        tokenkit.typecheck.OptionError: steps must be a positive int, got -3
    """

    model: str = "titok-tiny"
    """Tokenizer model name."""
    knobs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Knob overrides of the model."""
    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    """Images per micro-batch (per process)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 1e-4
    """Peak learning rate."""
    end_lr: float = 1e-5
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas."""
    weight_decay: float = 1e-4
    """AdamW weight decay (linear and conv weights only)."""
    clip: float = 1.0
    """Gradient-norm clipping (0 disables)."""
    precision: Precision = "auto"
    """Arithmetic of forward passes and losses: ``auto`` (default: bf16 where the hardware runs it
    natively, i.e. CUDA with bf16 and CPUs with AVX-512-bf16 / AMX; fp16 on CUDA without bf16; fp32
    otherwise, see ``tokenkit.precision.resolve_precision``), ``fp32``, ``bf16``
    (``torch.autocast``, no loss scaling needed) or ``fp16`` (autocast with a dynamic loss scale,
    ``torch.amp.GradScaler``). The trainer applies it itself, so several trainers with different
    precisions can run in one process (accelerate's own setting is fixed per process). The resolved
    precision is in every line of ``metrics.jsonl`` and in the checkpoints."""
    mixed_precision: dataclasses.InitVar[str | None] = None
    """Deprecated spelling of ``precision`` (accelerate's names): ``no`` means ``fp32``, ``bf16`` and
    ``fp16`` mean themselves. Read from old recipes with a warning; not stored."""
    ema_decay: float = 0.999
    """EMA decay (0 disables the EMA)."""
    seed: int = 0
    """Seed of the weights, the data order and the training randomness."""
    output_dir: str = "runs/tokenkit"
    """Where checkpoints, metrics.jsonl and the final model go."""
    log_every: int = 50
    """Steps between log lines."""
    checkpoint_every: int = 0
    """Steps between checkpoints (0: only at the end)."""
    sample_every: int = 0
    """Steps between reconstruction grids ``samples/step-XXXXXXX.png`` (0: none)."""
    sample_count: int = 8
    """Images in a reconstruction grid (the first items of the data)."""
    freeze: tuple[str, ...] = ()
    """Sub-modules kept frozen and in eval mode, e.g. ``("encoder", "quantizer")`` for TiTok stage 2."""
    num_workers: int = 0
    """DataLoader worker processes per training process (0: read in the training process)."""
    log_with: tuple[str, ...] = ()
    """Experiment trackers besides metrics.jsonl: ``"tensorboard"`` (logs under ``output_dir``), ``"wandb"``."""
    project: str = "tokenkit"
    """Tracker project / run-group name."""
    cpu: bool = False
    """Train on the CPU even when a GPU is present (several CPU processes use gloo)."""
    d_lr: float | None = None
    """Learning rate of the discriminators of adversarial loss terms (default: ``lr``; official 1e-4)."""
    eval_every: int = 0
    """Steps between evaluations of the EMA model on the evaluation data (0: none during training)."""
    eval_lpips: bool = False
    """Evaluations also report LPIPS (needs the VGG16 weights in the torch cache)."""
    on_nonfinite: OnNonfinite = "stop"
    """What a NaN / Inf loss does: ``stop`` (default) ends the run with an error naming the step and the
    last good checkpoint, before the optimizer step touches the weights; ``skip`` drops that batch (no
    optimizer step, a warning and a ``skipped_nonfinite`` count in the log) and goes on. All processes
    decide together, so they never diverge."""

    def __post_init__(self, mixed_precision: str | None = None) -> None:
        if isinstance(mixed_precision, dataclasses.InitVar):  # dataclasses.replace() passes the class default
            mixed_precision = None
        check_dataclass(self, ranges=RANGES)  # types and ranges; lists become tuples, a string a one-item tuple
        if mixed_precision is not None:
            object.__setattr__(self, "precision", self._legacy_precision(mixed_precision))
        for tracker in self.log_with:
            if tracker not in TRACKERS:
                raise OptionError(f"log_with has an unknown tracker {tracker!r}; choose from {', '.join(TRACKERS)}",
                                  "log_with")
            if importlib.util.find_spec(TRACKERS[tracker]) is None:
                raise OptionError(f"log_with={tracker!r} needs the {TRACKERS[tracker]!r} package: "
                                  f"pip install {TRACKERS[tracker]}", "log_with")

    def _legacy_precision(self, mixed_precision: Any) -> str:
        """The ``precision`` the deprecated ``mixed_precision`` means (with a ``FutureWarning``)."""
        if not isinstance(mixed_precision, str) or mixed_precision not in LEGACY_MIXED_PRECISION:
            raise OptionError(f"mixed_precision is deprecated and only reads the old values 'no', 'bf16' and "
                              f"'fp16'; got {mixed_precision!r}. Use precision: one of {', '.join(PRECISIONS)}",
                              "mixed_precision")
        meant = LEGACY_MIXED_PRECISION[mixed_precision]
        if self.precision not in ("auto", meant):
            raise OptionError(f"mixed_precision={mixed_precision!r} (that is, precision {meant!r}) contradicts "
                              f"precision={self.precision!r}; give only precision", "mixed_precision")
        warnings.warn(f"mixed_precision: {mixed_precision} is deprecated; it is read as precision: {meant}. "
                      "Write precision: auto (bf16 only where the hardware runs it natively), fp32, bf16 or fp16",
                      FutureWarning, stacklevel=4)
        return meant
