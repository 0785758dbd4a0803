"""A trainer on Hugging Face ``accelerate``: one CPU, one GPU or many, with the same code.

It owns the loop: AdamW (decay on linear/conv weights only), warm-up + cosine
schedule, gradient accumulation and clipping, automatic precision (bf16 / fp16
autocast where the hardware runs it natively, see ``tokenkit.precision``), EMA weights,
frozen sub-modules, JSONL + console logging with a tqdm bar (TensorBoard / W&B
optional), atomic periodic checkpoints and exact resume (model, EMA,
optimizer, scheduler, RNG states and data position). What one step computes is
an [objective][tokenkit.train.objectives]: tokenizer reconstruction, TiTok
stage-1 proxy codes, or masked-token generator training.

Several processes (``accelerate launch`` or ``torchrun``) split every global
batch of ``batch_size x processes`` images; gradients are averaged, so the run
follows the single-process run with batch ``batch_size x processes``.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tokenkit.contracts import TokenizerOutput
from tokenkit.errors import ConfigError
from tokenkit.precision import describe, resolve_precision
from tokenkit.precision import autocast as precision_autocast
from tokenkit.train.config import TrainConfig
from tokenkit.train.checkpoint import load_latest, remove_stale_temporaries, save_checkpoint
from tokenkit.train.data import BatchStream, to_device
from tokenkit.train.objectives import (
    LossFn,
    MaskedTokens,
    Objective,
    ProxyCodes,
    Reconstruction,
    default_loss,
    loss_from_module,
)
from tokenkit.train.optim import EMA, adamw, cosine_schedule, parameter_groups

class Trainer:
    """Train a tokenizer or a generator on a tensor of images or any dataset.

    Args:
        config: [`TrainConfig`][tokenkit.train.config.TrainConfig].
        data: ``(M, C, H, W)`` training images in [0, 1], a map-style dataset or an
            ``IterableDataset`` (streaming, e.g. ``webdataset``) of item dicts
            (``{"image": ...}``, or ``{"tokens": ..., "label": ...}`` for a generator);
            batched by [`BatchStream`][tokenkit.train.data.BatchStream].
        loss_fn: ``loss_fn(output, images, step, targets=None) -> (loss, terms)`` of a tokenizer;
            default [`default_loss`][tokenkit.train.objectives.default_loss] (MSE + VQ loss, or
            + 1e-6 x KL for a continuous bottleneck).
        model: A built model (default: ``tk.build(config.model, **config.knobs)`` under the seed).
        loss_module: A loss part (kind ``loss``, e.g. a ``composite``); replaces ``loss_fn``. Its
            adversarial terms get a discriminator step after each generator step, with their own
            AdamW optimizer (``d_lr``; the generator's schedule over the steps from their
            ``start_step``), from their ``start_step``.
        teacher: A frozen tokenizer whose codes are the targets (TiTok stage 1,
            [`ProxyCodes`][tokenkit.train.objectives.ProxyCodes]).
        objective: What a step computes; default chosen from the model:
            [`MaskedTokens`][tokenkit.train.objectives.MaskedTokens] for a generator,
            [`ProxyCodes`][tokenkit.train.objectives.ProxyCodes] with a ``teacher``, else
            [`Reconstruction`][tokenkit.train.objectives.Reconstruction].
        eval_data: Held-out images or dataset for [`evaluate`][tokenkit.train.trainer.Trainer.evaluate]
            (every ``eval_every`` steps).
    """

    def __init__(self, config: TrainConfig, data: torch.Tensor | Any, *, loss_fn: LossFn | None = None,
                 model: nn.Module | None = None, loss_module: nn.Module | None = None,
                 teacher: nn.Module | None = None, objective: Objective | None = None,
                 eval_data: torch.Tensor | Any | None = None) -> None:
        from accelerate import Accelerator

        import tokenkit as tk

        self.config = config
        self.output = Path(config.output_dir)
        from accelerate.state import is_initialized

        # precision is applied by self.autocast(); accelerate's own setting stays "no" (and is left
        # alone when another Accelerator set up this process first: it cannot be changed)
        self.accelerator = Accelerator(cpu=config.cpu or _multi_process_without_accelerator(),
                                       mixed_precision=None if is_initialized() else "no",
                                       gradient_accumulation_steps=config.grad_accum,
                                       log_with=list(config.log_with) or None, project_dir=str(self.output))
        self.precision = resolve_precision(config.precision, self.accelerator.device)
        """The resolved precision of this run (``fp32``, ``bf16`` or ``fp16``)."""
        self.scaler = _grad_scaler(self.precision, self.accelerator.device)
        self._announced = False
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = model if model is not None else tk.build(config.model, **dict(config.knobs))
        self.model.to(self.accelerator.device)  # before the EMA copy, so that both live on the device
        self.frozen = self._freeze(self.model, config.freeze)
        self._train_mode(self.model)
        self.loss_module = loss_module.to(self.accelerator.device) if loss_module is not None else None
        if loss_fn is None and loss_module is not None:
            loss_fn = loss_from_module(loss_module)
        self.objective = (objective or self._default_objective(loss_fn, teacher)).to(self.accelerator.device)
        if config.eval_every and eval_data is None:
            raise ConfigError("eval_every is set but there is no eval_data to evaluate on")
        self.eval_data = eval_data
        self.data = BatchStream(data, config.batch_size, seed=config.seed, rank=self.accelerator.process_index,
                                world=self.accelerator.num_processes, num_workers=config.num_workers)
        self.adversarial = [m for m in (loss_module.modules() if loss_module is not None else ())
                            if callable(getattr(m, "discriminator_loss", None))]
        d_params = [p for m in self.adversarial for p in m.parameters() if p.requires_grad]
        d_lr = config.lr if config.d_lr is None else config.d_lr
        self.d_optimizer = (adamw(d_params, lr=d_lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
                            if d_params else None)
        self.d_scaler = _grad_scaler(self.precision, self.accelerator.device) if d_params else None
        # as officially: the generator's warm-up/cosine multiplier, over the steps the discriminator trains
        d_start = min((getattr(getattr(m, "config", None), "start_step", 0) for m in self.adversarial), default=0)
        self.d_scheduler = (cosine_schedule(self.d_optimizer, warmup_steps=config.warmup_steps,
                                            total_steps=max(1, config.steps - d_start), base_lr=config.lr,
                                            end_lr=config.end_lr)
                            if self.d_optimizer is not None else None)
        groups = parameter_groups(self.model, config.weight_decay)
        if not groups:
            raise ConfigError("nothing to train: every parameter is frozen")
        self.optimizer = adamw(groups, lr=config.lr, betas=tuple(config.betas))
        self.scheduler = cosine_schedule(self.optimizer, warmup_steps=config.warmup_steps,
                                         total_steps=config.steps, base_lr=config.lr, end_lr=config.end_lr)
        self.ema = EMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.step = 0
        self._samples: torch.Tensor | None = None
        # the scheduler is stepped by hand once per optimizer step (a prepared one would step once per process)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        if config.log_with:
            self.accelerator.init_trackers(config.project, config={**_flat(dataclasses.asdict(config)),
                                                                   "precision_resolved": self.precision})

    def autocast(self):
        """The precision context of forward passes and losses: autocast in bf16 / fp16, nothing for fp32."""
        return precision_autocast(self.precision, self.accelerator.device)

    def _default_objective(self, loss_fn: LossFn | None, teacher: nn.Module | None) -> Objective:
        if hasattr(self.model, "mask_id"):
            if loss_fn is not None or teacher is not None:
                raise ConfigError("a generator trains with the masked-token objective; loss parts and teachers "
                                  "apply to tokenizers")
            return MaskedTokens()
        if teacher is not None:
            return ProxyCodes(teacher, loss_fn)
        return Reconstruction(loss_fn or default_loss(self.model))

    @staticmethod
    def _freeze(model: nn.Module, names: tuple[str, ...]) -> list[nn.Module]:
        modules = []
        for name in names:
            try:
                module = model.get_submodule(name)
            except AttributeError:
                children = ", ".join(n for n, _ in model.named_children())
                raise ConfigError(f"cannot freeze {name!r}: the model has no such sub-module "
                                  f"(top-level parts: {children})") from None
            modules.append(module.requires_grad_(False))
        return modules

    def _train_mode(self, model: nn.Module) -> None:
        """Training mode, except the frozen parts (kept in eval mode, as officially in stage 2)."""
        model.train()
        for module in self.frozen:
            module.eval()

    # ---- state ----------------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Current data epoch of this process."""
        return self.data.epoch

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly."""
        unwrapped = self.accelerator.unwrap_model(self.model)
        return {
            "step": self.step, "data": self.data.state_dict(), "data_per_process": None,
            "model": unwrapped.state_dict(), "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "loss_module": None if self.loss_module is None else self.loss_module.state_dict(),
            "d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict(),
            "d_scheduler": None if self.d_scheduler is None else self.d_scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state()] if torch.cuda.is_available() else None,
            "python_rng": list(random.getstate()[1]),
            "python_gauss": random.getstate()[2],
            "precision": self.precision,
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "d_scaler": None if self.d_scaler is None else self.d_scaler.state_dict(),
            "config": json.loads(json.dumps(dataclasses.asdict(self.config))),
            "spec": self._spec_dict(),
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
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.d_scaler is not None and state.get("d_scaler") is not None:
            self.d_scaler.load_state_dict(state["d_scaler"])
        if state.get("precision", self.precision) != self.precision and self.accelerator.is_main_process:
            warnings.warn(f"the checkpoint was trained in {state['precision']}; this run continues in "
                          f"{self.precision} ({describe(self.config.precision, self.accelerator.device)})",
                          UserWarning, stacklevel=2)
        torch.set_rng_state(state["torch_rng"])
        cuda_rng = state.get("cuda_rng")  # one state per process (its current device)
        if cuda_rng is not None and torch.cuda.is_available() and len(cuda_rng) == self.accelerator.num_processes:
            torch.cuda.set_rng_state(cuda_rng[self.accelerator.process_index].cpu())
        random.setstate((3, tuple(state["python_rng"]), state.get("python_gauss")))
        self.step = state["step"]
        positions = state.get("data_per_process")
        rank = self.accelerator.process_index
        if positions is not None and len(positions) == self.accelerator.num_processes:
            self.data.load_state_dict(positions[rank])
        else:
            self.data.load_state_dict(state["data"])

    def resume(self) -> bool:
        """Continue from the newest checkpoint in ``output_dir/checkpoints``; returns whether there was one.

        ``latest`` is used when it loads; when it is broken the newest loadable checkpoint is used,
        with a warning ([`load_latest`][tokenkit.train.checkpoint.load_latest]). Temporary files of
        interrupted checkpoint writes are deleted first (by the main process).

        Raises:
            WeightsError: Checkpoints exist but none loads (the run does not silently restart at step 0).
            ConfigError: The checkpoint holds another composition (both are named).
        """
        folder = self.output / "checkpoints"
        if self.accelerator.is_main_process:
            for path in remove_stale_temporaries(folder):
                warnings.warn(f"removed {path}, left by an interrupted checkpoint write", UserWarning, stacklevel=2)
        found = load_latest(folder)
        if found is None:
            return False
        path, state = found
        self._check_composition(state, path)
        self.load_state_dict(state)
        return True

    def _check_composition(self, state: Mapping[str, Any], path: Path) -> None:
        """Refuse a checkpoint of another composition, naming both."""
        ours = self._spec_dict()
        theirs = state.get("spec")
        if theirs is not None and ours is not None and theirs != ours:
            raise ConfigError(f"{path} holds another composition than this run; checkpoint: "
                              f"{json.dumps(theirs, sort_keys=True)}; this run: {json.dumps(ours, sort_keys=True)}. "
                              "Use another output_dir, or --restart to train this composition from scratch")
        model = self.accelerator.unwrap_model(self.model).state_dict()
        if set(state["model"]) != set(model) or any(
                tuple(state["model"][k].shape) != tuple(v.shape) for k, v in model.items()):
            trained = state.get("config", {})
            raise ConfigError(f"{path} holds another composition than this run (its weights do not fit: model "
                              f"{trained.get('model')!r} with knobs {trained.get('knobs')} against "
                              f"{self.config.model!r} with knobs {self.config.knobs}). Use another output_dir, "
                              "or --restart to train this composition from scratch")

    def _spec_dict(self) -> dict | None:
        spec = getattr(self.accelerator.unwrap_model(self.model), "spec", None)
        return None if spec is None else json.loads(json.dumps(spec.to_dict()))

    def save(self) -> Path | None:
        """Write a checkpoint (every process must call it; the main process writes)."""
        acc = self.accelerator
        positions, cuda_rng = None, None
        if acc.num_processes > 1:  # streams and GPU random states differ between processes
            here = torch.tensor([[self.data.epoch, self.data.offset]], device=acc.device)
            positions = [{"epoch": int(e), "offset": int(o)} for e, o in acc.gather(here).tolist()]
            if torch.cuda.is_available():
                cuda_rng = list(acc.gather(torch.cuda.get_rng_state().to(acc.device)[None]).cpu())
        acc.wait_for_everyone()
        if not acc.is_main_process:
            return None
        state = self.state_dict()
        state["data_per_process"] = positions
        if cuda_rng is not None:
            state["cuda_rng"] = cuda_rng
        return save_checkpoint(state, self.output / "checkpoints", self.step)

    # ---- loop -----------------------------------------------------------------------------------------------
    def train(self, *, stop_after: int | None = None, progress: bool = True) -> dict[str, Any]:
        """Run until ``config.steps`` (or ``stop_after`` more steps); returns the last logged metrics
        (numbers, and ``precision``: the resolved precision). With ``progress`` the main process prints
        the precision and why it was chosen once, then shows a progress bar."""
        from tqdm.auto import tqdm

        config, acc = self.config, self.accelerator
        end = config.steps if stop_after is None else min(config.steps, self.step + stop_after)
        if progress and acc.is_main_process and not self._announced:
            print(describe(config.precision, acc.device), flush=True)
            self._announced = True
        bar = tqdm(total=config.steps, initial=self.step, desc="training", unit="step",
                   disable=not (progress and acc.is_main_process))
        last: dict[str, Any] = {}
        start_time = time.perf_counter()
        while self.step < end:
            for _ in range(config.grad_accum):
                batch = to_device(self.data.next(), acc.device)
                with acc.accumulate(self.model):
                    with self.autocast():  # forward and loss; backward and the step run outside autocast
                        result = self.objective(self.model, batch, self.step)
                    acc.backward(result.loss if self.scaler is None else self.scaler.scale(result.loss))
                    if acc.sync_gradients:
                        _optimizer_step(self.optimizer, self.scaler,
                                        lambda: acc.clip_grad_norm_(self.model.parameters(), config.clip)
                                        if config.clip > 0 else None)
                        self.scheduler.step()
                    self.optimizer.zero_grad(set_to_none=True)
            terms = dict(result.terms)
            if self.d_optimizer is not None and result.output is not None:
                terms.update(self._discriminator_step(result.images, result.output))
            self.step += 1
            if self.ema is not None:
                self.ema.update(acc.unwrap_model(self.model))
            bar.update(1)
            if self.step % config.log_every == 0 or self.step == end:
                last = {"step": self.step, "loss": result.loss.item(), "lr": self.scheduler.get_last_lr()[0],
                        **{k: float(v) for k, v in terms.items()},
                        **{k: float(v) for k, v in result.stats.items()},
                        **({} if self.scaler is None else {"loss_scale": float(self.scaler.get_scale())}),
                        "seconds": time.perf_counter() - start_time, "precision": self.precision}
                bar.set_postfix(loss=f"{last['loss']:.4f}")
                self._log(last)
            if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                self.save()
            if config.sample_every and self.step % config.sample_every == 0 and acc.is_main_process:
                self.save_samples()
            if config.eval_every and self.step % config.eval_every == 0:
                self.evaluate()
        bar.close()
        return last

    def evaluate(self, data: torch.Tensor | Any | None = None) -> dict[str, float]:
        """Metrics of the EMA model on ``data`` (default: ``eval_data``), logged as ``eval_*``.

        The main process evaluates; the others wait and return ``{}``. See
        [`tokenkit.train.evaluate`][tokenkit.train.evaluate] for the metrics of each objective.
        """
        from tokenkit.train.evaluate import evaluate

        data = self.eval_data if data is None else data
        if data is None:
            raise ConfigError("no evaluation data: pass eval_data to the Trainer or data to evaluate()")
        acc = self.accelerator
        result: dict[str, float] = {}
        if acc.is_main_process:
            model = self.trained_model()
            with self.autocast():
                result = evaluate(model, self.objective, data, batch_size=self.config.batch_size,
                                  lpips=self.config.eval_lpips, device=acc.device,
                                  num_workers=self.config.num_workers)
            if self.ema is None:
                self._train_mode(model)
            self._log({"step": self.step, **{f"eval_{k}": v for k, v in result.items()}})
        acc.wait_for_everyone()
        return result

    def _log(self, line: dict[str, Any]) -> None:
        """Append ``line`` (with the resolved ``precision``) to ``metrics.jsonl`` (main process) and send
        its numbers to the trackers, if any."""
        if self.accelerator.is_main_process:
            self.output.mkdir(parents=True, exist_ok=True)
            with open(self.output / "metrics.jsonl", "a") as f:
                f.write(json.dumps({**line, "precision": self.precision}) + "\n")
        if self.config.log_with:
            self.accelerator.log({k: v for k, v in line.items() if k != "step" and isinstance(v, (int, float))},
                                 step=self.step)

    def finish(self) -> None:
        """Close the experiment trackers (TensorBoard / W&B), if any."""
        if self.config.log_with:
            self.accelerator.end_training()

    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """Write a grid of fixed training images (top) and their reconstructions by the EMA model (bottom).

        Returns ``None`` (and writes nothing) for an objective without images, e.g. a generator's.
        """
        from torchvision.utils import make_grid, save_image

        if self._samples is None:
            first = to_device(self.data.first(self.config.sample_count), self.accelerator.device)
            self._samples = first.get("image")
        images = self._samples
        if images is None:
            return None
        model = self.trained_model()
        with self.autocast():
            rec = self.objective.reconstruct(model, images)
        if self.ema is None:
            self._train_mode(model)
        if rec is None:
            return None
        path = self.output / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(make_grid(torch.cat([images.float(), rec.float().clamp(0, 1)]).cpu(), nrow=images.shape[0],
                             padding=1), path)
        return path

    def _discriminator_step(self, images: torch.Tensor, output: TokenizerOutput) -> dict[str, torch.Tensor]:
        """Hinge (+ LeCAM) update of every adversarial term's discriminator, once active."""
        from tokenkit.losses import LossInputs

        active = [m for m in self.adversarial if not hasattr(m, "active") or m.active(self.step)]
        if not active:
            return {}
        inputs = LossInputs(images=images, reconstructions=output.images.detach(),
                            quantizer_loss=output.loss.detach(), step=self.step)
        with self.autocast():
            d_loss = sum(m.discriminator_loss(inputs) for m in active)
        self.d_optimizer.zero_grad(set_to_none=True)
        (d_loss if self.d_scaler is None else self.d_scaler.scale(d_loss)).backward()
        params = [p for g in self.d_optimizer.param_groups for p in g["params"]]
        _optimizer_step(self.d_optimizer, self.d_scaler,
                        lambda: torch.nn.utils.clip_grad_norm_(params, self.config.clip) if self.config.clip > 0
                        else None)
        self.d_scheduler.step()
        return {"discriminator_loss": d_loss.detach()}

    def trained_model(self, ema: bool = True) -> nn.Module:
        """The trained model (its EMA weights by default), in eval mode."""
        model = self.ema.shadow if (ema and self.ema is not None) else self.accelerator.unwrap_model(self.model)
        return model.eval()


def _optimizer_step(optimizer: torch.optim.Optimizer, scaler: Any, clip: Callable[[], Any]) -> None:
    """One optimizer step after backward: ``clip()`` on the true gradients (unscaled first with a loss
    scale), then the step (which the scaler skips when a gradient is inf / nan)."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    clip()
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()


def _grad_scaler(precision: str, device: torch.device) -> Any:
    """The dynamic loss scale of fp16 training (``torch.amp.GradScaler``), ``None`` otherwise."""
    if precision != "fp16":
        return None
    try:
        return torch.amp.GradScaler(device.type)
    except (RuntimeError, ValueError, AttributeError) as err:
        raise ConfigError(f"precision 'fp16' needs a loss scale, and torch has no GradScaler for {device.type!r} "
                          f"({err}); use precision: auto, bf16 or fp32") from None


def _multi_process_without_accelerator() -> bool:
    """Launched as several processes (``torchrun``) on a machine without GPU: accelerate then needs
    ``cpu=True`` to set up gloo (``accelerate launch --cpu`` says so itself)."""
    import os

    accelerators = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not accelerators


def _flat(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Tracker-friendly config: nested mappings flattened with dots, other values as str unless scalar."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flat(value, name + "."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat
