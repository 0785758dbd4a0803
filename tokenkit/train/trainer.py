"""A tokenizer trainer on Hugging Face ``accelerate``: one CPU, one GPU or many, with the same code.

It owns the loop: AdamW (decay on linear/conv weights only), warm-up + cosine
schedule, gradient accumulation and clipping, bf16 autocast, EMA weights,
JSONL + console logging with a tqdm bar, atomic periodic checkpoints and exact
resume (model, EMA, optimizer, scheduler, RNG states and data position).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from tokenkit.contracts import TokenizerOutput
from tokenkit.errors import ConfigError
from tokenkit.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from tokenkit.train.optim import EMA, cosine_schedule, parameter_groups


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
    mixed_precision: Literal["no", "bf16"] = "no"
    """``bf16`` autocast through accelerate."""
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

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ConfigError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def reconstruction_loss(output: TokenizerOutput, images: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
    """Default objective: mean squared error plus the bottleneck loss (VQ terms or KL)."""
    mse = (output.images.float() - images).square().mean()
    return mse + output.loss, {"mse": mse.detach(), "bottleneck": output.loss.detach()}


LossFn = Callable[[TokenizerOutput, torch.Tensor, int], tuple[torch.Tensor, dict]]


def loss_from_module(module: nn.Module) -> LossFn:
    """A trainer ``loss_fn`` from a loss part (``terms_of`` is used when the part has it)."""
    from tokenkit.losses import LossInputs

    def loss_fn(output: TokenizerOutput, images: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]:
        inputs = LossInputs(images=images, reconstructions=output.images, quantizer_loss=output.loss, step=step)
        if hasattr(module, "terms_of"):
            result = module.terms_of(inputs)
            return result.loss, result.terms
        loss = module(inputs)
        return loss, {"loss": loss.detach()}

    return loss_fn


class Trainer:
    """Train a tokenizer on a tensor of images (e.g. ``tk.data.sample_images``) or any dataset of them.

    Args:
        config: [`TrainConfig`][tokenkit.train.trainer.TrainConfig].
        images: ``(M, C, H, W)`` training images in [0, 1], or a map-style dataset whose
            items are ``{"image": (C, H, W), ...}`` dicts (a ``set_epoch(epoch)`` method, if
            any, is called at each epoch). Each epoch is a seeded permutation, split across
            processes.
        loss_fn: ``loss_fn(output, images, step) -> (loss, terms)``; default
            [`reconstruction_loss`][tokenkit.train.trainer.reconstruction_loss].
        model: A built tokenizer (default: ``tk.build(config.model, **config.knobs)`` under the seed).
        loss_module: A loss part (kind ``loss``, e.g. a ``composite``); replaces ``loss_fn``. Its
            adversarial terms get a discriminator step after each generator step, with their own
            AdamW optimizer (same learning rate and schedule), from their ``start_step``.
    """

    def __init__(self, config: TrainConfig, images: torch.Tensor | Any, *, loss_fn: LossFn | None = None,
                 model: nn.Module | None = None, loss_module: nn.Module | None = None) -> None:
        from accelerate import Accelerator

        import tokenkit as tk

        self.config = config
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision,
                                       gradient_accumulation_steps=config.grad_accum)
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = (model if model is not None else tk.build(config.model, **dict(config.knobs))).train()
        self.images = images
        self.loss_module = loss_module.to(self.accelerator.device) if loss_module is not None else None
        self.loss_fn = loss_fn or (loss_from_module(loss_module) if loss_module is not None else reconstruction_loss)
        self.adversarial = [m for m in (loss_module.modules() if loss_module is not None else ())
                            if callable(getattr(m, "discriminator_loss", None))]
        d_params = [p for m in self.adversarial for p in m.parameters() if p.requires_grad]
        self.d_optimizer = (torch.optim.AdamW(d_params, lr=config.lr, betas=tuple(config.betas),
                                              weight_decay=config.weight_decay) if d_params else None)
        self.d_scheduler = (cosine_schedule(self.d_optimizer, warmup_steps=config.warmup_steps,
                                            total_steps=config.steps, base_lr=config.lr, end_lr=config.end_lr)
                            if self.d_optimizer is not None else None)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config.weight_decay), lr=config.lr,
                                           betas=tuple(config.betas))
        self.scheduler = cosine_schedule(self.optimizer, warmup_steps=config.warmup_steps,
                                         total_steps=config.steps, base_lr=config.lr, end_lr=config.end_lr)
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.step, self.epoch, self.offset = 0, 0, 0
        self.output = Path(config.output_dir)
        # the scheduler is stepped by hand once per optimizer step (a prepared one would step once per process)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)

    # ---- data ----------------------------------------------------------------------------------------------
    def _order(self, epoch: int) -> torch.Tensor:
        """This process's share of epoch ``epoch``'s permutation (seeded: identical after a resume)."""
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.images), generator=g)
        return order[self.accelerator.process_index :: self.accelerator.num_processes]

    def _gather(self, picked: torch.Tensor) -> torch.Tensor:
        if isinstance(self.images, torch.Tensor):
            return self.images[picked]
        if hasattr(self.images, "set_epoch"):
            self.images.set_epoch(self.epoch)
        return torch.stack([self.images[int(i)]["image"] for i in picked])

    def _next_batch(self) -> torch.Tensor:
        order = self._order(self.epoch)
        if self.offset + self.config.batch_size > len(order):
            self.epoch, self.offset = self.epoch + 1, 0
            order = self._order(self.epoch)
        picked = order[self.offset : self.offset + self.config.batch_size]
        self.offset += self.config.batch_size
        return self._gather(picked).to(self.accelerator.device)

    # ---- state ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        return {
            "step": self.step, "epoch": self.epoch, "offset": self.offset,
            "model": unwrapped.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "loss_module": None if self.loss_module is None else self.loss_module.state_dict(),
            "d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            "d_scheduler": None if self.d_scheduler is None else self.d_scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(), "python_rng": list(random.getstate()[1]),
            "python_gauss": random.getstate()[2],
            "config": json.loads(json.dumps(dataclasses.asdict(self.config))),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a [`state_dict`][tokenkit.train.trainer.Trainer.state_dict]."""
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.loss_module is not None and state.get("loss_module") is not None:
            self.loss_module.load_state_dict(state["loss_module"])
        if self.d_optimizer is not None and state.get("d_optimizer") is not None:
            self.d_optimizer.load_state_dict(state["d_optimizer"])
            self.d_scheduler.load_state_dict(state["d_scheduler"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate((3, tuple(state["python_rng"]), state.get("python_gauss")))
        self.step, self.epoch, self.offset = state["step"], state["epoch"], state["offset"]

    def resume(self) -> bool:
        """Continue from ``output_dir/checkpoints/latest`` if it exists; returns whether it did."""
        path = latest_checkpoint(self.output / "checkpoints")
        if path is None:
            return False
        self.load_state_dict(load_checkpoint(path))
        return True

    def save(self) -> Path | None:
        """Write a checkpoint (main process only)."""
        self.accelerator.wait_for_everyone()
        if not self.accelerator.is_main_process:
            return None
        return save_checkpoint(self.state_dict(), self.output / "checkpoints", self.step)

    # ---- loop -----------------------------------------------------------------------------------------------
    def train(self, *, stop_after: int | None = None, progress: bool = True) -> dict[str, float]:
        """Run until ``config.steps`` (or ``stop_after`` more steps); returns the last logged metrics."""
        from tqdm.auto import tqdm

        config, acc = self.config, self.accelerator
        end = config.steps if stop_after is None else min(config.steps, self.step + stop_after)
        bar = tqdm(total=config.steps, initial=self.step, desc="training", unit="step",
                   disable=not (progress and acc.is_main_process))
        log_path = self.output / "metrics.jsonl"
        if acc.is_main_process:
            self.output.mkdir(parents=True, exist_ok=True)
        last: dict[str, float] = {}
        start_time = time.perf_counter()
        while self.step < end:
            for _ in range(config.grad_accum):
                images = self._next_batch()
                with acc.accumulate(self.model), acc.autocast():
                    output = self.model(images)
                    loss, terms = self.loss_fn(output, images, self.step)
                    acc.backward(loss)
                    if acc.sync_gradients and config.clip > 0:
                        acc.clip_grad_norm_(self.model.parameters(), config.clip)
                    self.optimizer.step()
                    if acc.sync_gradients:
                        self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
            if self.d_optimizer is not None:
                terms = {**terms, **self._discriminator_step(images, output)}
            self.step += 1
            if self.ema is not None:
                self.ema.update(acc.unwrap_model(self.model))
            bar.update(1)
            if self.step % config.log_every == 0 or self.step == end:
                last = {"step": self.step, "loss": loss.item(), "lr": self.scheduler.get_last_lr()[0],
                        **{k: float(v) for k, v in terms.items()},
                        **{k: float(v) for k, v in output.stats.items()},
                        "seconds": time.perf_counter() - start_time}
                bar.set_postfix(loss=f"{last['loss']:.4f}")
                if acc.is_main_process:
                    with open(log_path, "a") as f:
                        f.write(json.dumps(last) + "\n")
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save()
            if config.sample_every and self.step % config.sample_every == 0 and acc.is_main_process:
                self.save_samples()
        bar.close()
        return last

    @torch.no_grad()
    def save_samples(self, count: int = 8) -> Path:
        """Write a grid of fixed training images (top) and their reconstructions by the EMA model (bottom)."""
        from torchvision.utils import make_grid, save_image

        images = self._gather(torch.arange(min(count, len(self.images)))).to(self.accelerator.device)
        model = self.trained_model()
        with self.accelerator.autocast():
            rec = model.decode(model.encode(images).codes).float().clamp(0, 1)
        if self.ema is None:
            model.train()
        path = self.output / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(make_grid(torch.cat([images.float(), rec]).cpu(), nrow=images.shape[0], padding=1), path)
        return path

    def _discriminator_step(self, images: torch.Tensor, output: TokenizerOutput) -> dict[str, torch.Tensor]:
        """Hinge (+ LeCAM) update of every adversarial term's discriminator, once active."""
        from tokenkit.losses import LossInputs

        active = [m for m in self.adversarial if not hasattr(m, "active") or m.active(self.step)]
        if not active:
            return {}
        inputs = LossInputs(images=images, reconstructions=output.images.detach(),
                            quantizer_loss=output.loss.detach(), step=self.step)
        with self.accelerator.autocast():
            d_loss = sum(m.discriminator_loss(inputs) for m in active)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        if self.config.clip > 0:
            torch.nn.utils.clip_grad_norm_([p for g in self.d_optimizer.param_groups for p in g["params"]],
                                           self.config.clip)
        self.d_optimizer.step()
        self.d_scheduler.step()
        return {"discriminator_loss": d_loss.detach()}

    def trained_model(self, ema: bool = True) -> nn.Module:
        """The trained tokenizer (its EMA weights by default), in eval mode."""
        model = self.ema.shadow if (ema and self.ema is not None) else self.accelerator.unwrap_model(self.model)
        return model.eval()
