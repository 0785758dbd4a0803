"""Options of a training run: [`TrainConfig`][tokenkit.train.config.TrainConfig], one frozen dataclass whose
fields are JSON values (a recipe's ``train`` section)."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

from tokenkit.errors import ConfigError
from tokenkit.precision import PRECISIONS

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb"}
"""Experiment trackers ``log_with`` accepts, and the package each needs."""

NONFINITE = ("stop", "skip")
"""What ``on_nonfinite`` accepts."""

LEGACY_MIXED_PRECISION = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}
"""The deprecated ``mixed_precision`` values (accelerate's names) and the ``precision`` each means."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of a training run (every field is a JSON value)."""

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
    precision: str = "auto"
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
    on_nonfinite: str = "stop"
    """What a NaN / Inf loss does: ``stop`` (default) ends the run with an error naming the step and the
    last good checkpoint, before the optimizer step touches the weights; ``skip`` drops that batch (no
    optimizer step, a warning and a ``skipped_nonfinite`` count in the log) and goes on. All processes
    decide together, so they never diverge."""

    def __post_init__(self, mixed_precision: str | None = None) -> None:
        if isinstance(mixed_precision, dataclasses.InitVar):  # dataclasses.replace() passes the class default
            mixed_precision = None
        if mixed_precision is not None:
            if mixed_precision not in LEGACY_MIXED_PRECISION:
                raise ConfigError(f"mixed_precision is deprecated and only reads the old values 'no', 'bf16' and "
                                  f"'fp16'; got {mixed_precision!r}. Use precision: one of {', '.join(PRECISIONS)}")
            meant = LEGACY_MIXED_PRECISION[mixed_precision]
            if self.precision not in ("auto", meant):
                raise ConfigError(f"mixed_precision={mixed_precision!r} (that is, precision {meant!r}) contradicts "
                                  f"precision={self.precision!r}; give only precision")
            warnings.warn(f"mixed_precision: {mixed_precision} is deprecated; it is read as precision: {meant}. "
                          "Write precision: auto (bf16 only where the hardware runs it natively), fp32, bf16 or fp16",
                          FutureWarning, stacklevel=3)
            object.__setattr__(self, "precision", meant)
        if self.on_nonfinite not in NONFINITE:
            raise ConfigError(f"on_nonfinite must be one of {', '.join(NONFINITE)}, got {self.on_nonfinite!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        for name in ("freeze", "log_with"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        for name in ("sample_count",):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        for name in ("lr", "end_lr", "weight_decay", "clip", "ema_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
        if self.d_lr is not None and (isinstance(self.d_lr, bool) or not isinstance(self.d_lr, (int, float))
                                      or self.d_lr < 0):
            raise ConfigError(f"d_lr must be a non-negative number or None, got {self.d_lr!r}")
        if len(self.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in self.betas):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be a non-negative int, got {self.warmup_steps!r}")
        if not isinstance(self.eval_every, int) or self.eval_every < 0:
            raise ConfigError(f"eval_every must be a non-negative int, got {self.eval_every!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"num_workers must be a non-negative int, got {self.num_workers!r}")
        for tracker in self.log_with:
            if tracker not in TRACKERS:
                raise ConfigError(f"unknown tracker {tracker!r} in log_with; choose from {', '.join(TRACKERS)}")
            import importlib.util

            if importlib.util.find_spec(TRACKERS[tracker]) is None:
                raise ConfigError(f"log_with={tracker!r} needs the {TRACKERS[tracker]!r} package: "
                                  f"pip install {TRACKERS[tracker]}")
        for name in ("steps", "batch_size", "grad_accum", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
