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
batch of ``batch_size x processes`` images; gradients are averaged (the
discriminators' too), so the run follows the single-process run with batch
``batch_size x processes``.

A NaN / Inf input or loss never reaches the weights: the step is checked before
any optimizer touches them, and it either stops the run with a
[`NonFiniteLossError`][tokenkit.train.trainer.NonFiniteLossError] or is dropped
(``on_nonfinite``, see [`Trainer`][tokenkit.train.trainer.Trainer]).
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from tokenkit.api import build
from tokenkit.contracts import LossInputs
from tokenkit.errors import ConfigError, TokenkitError
from tokenkit.kinds import Generator, Loss
from tokenkit.precision import autocast as precision_autocast
from tokenkit.precision import describe, resolve_precision
from tokenkit.processes import multi_process_without_accelerator
from tokenkit.train.checkpoint import latest_checkpoint, load_latest, remove_stale_temporaries, save_checkpoint
from tokenkit.train.config import TrainConfig
from tokenkit.train.data import BatchStream, to_device
from tokenkit.train.evaluate import evaluate
from tokenkit.train.objectives import (
    DiffusionTokens,
    LossFn,
    MaskedTokens,
    NextTokens,
    Objective,
    ProxyCodes,
    Reconstruction,
    StepOutput,
    default_loss,
    loss_from_module,
)
from tokenkit.train.optim import EMA, adamw, cosine_schedule, parameter_groups


class NonFiniteLossError(TokenkitError, RuntimeError):
    """A training step met a NaN / Inf input or loss (``on_nonfinite: stop``).

    Raised before any optimizer step, so the model, EMA, optimizers and discriminators are as
    after the previous step. The message names the step, what was not finite (the loss terms,
    the process), the last good checkpoint and how to skip such steps instead.

    Examples:
        >>> import tempfile, warnings
        >>> import tokenkit as tk
        >>> from tokenkit.train import NonFiniteLossError, TrainConfig, Trainer
        >>> images = tk.data.sample_images(16, per_image=2, seed=0)
        >>> images[0, 0, 0, 0] = float("nan")  # one bad pixel in the first batch
        >>> with tempfile.TemporaryDirectory() as out:
        ...     config = TrainConfig(model="titok-tiny", knobs={"image_size": 16}, steps=2, batch_size=4,
        ...                          output_dir=out, on_nonfinite="stop")
        ...     try:
        ...         Trainer(config, images).train(progress=False)
        ...     except NonFiniteLossError as err:
        ...         print(str(err)[:39])
        step 1: the input batch holds NaN / Inf
    """


class Trainer:
    """Train a tokenizer or a generator on a tensor of images or any dataset.

    Args:
        config: [`TrainConfig`][tokenkit.train.config.TrainConfig].
        data: ``(M, C, H, W)`` training images in [0, 1], a map-style dataset or an
            ``IterableDataset`` (streaming, e.g. ``webdataset``) of item dicts
            (``{"image": ...}``, ``{"image", "text"}`` for a text-aware tokenizer, or
            ``{"tokens": ..., "label": ...}`` for a generator, ``{"tokens" or "codes", "text"}`` for
            a text-conditioned one); batched by [`BatchStream`][tokenkit.train.data.BatchStream].
        loss_fn: ``loss_fn(output, images, step, targets=None) -> (loss, terms)`` of a tokenizer;
            default [`default_loss`][tokenkit.train.objectives.default_loss] (MSE + VQ loss, or
            + 1e-6 x KL for a continuous bottleneck).
        model: A built model (default: ``build(config.model, **config.knobs)`` under the seed).
        loss_module: A loss part (kind ``loss``, e.g. a ``composite``); replaces ``loss_fn``. Its
            adversarial terms train their discriminators from their ``start_step``: the hinge (+ LeCAM)
            loss of every micro-batch's detached reconstructions is back-propagated next to the
            generator's, and their own AdamW optimizer (``d_lr``; the generator's schedule over the
            steps from their ``start_step``) steps once per optimizer step. With several processes the
            discriminators are one DDP module, so their gradients are averaged like the model's.
        teacher: A frozen tokenizer whose codes are the targets (TiTok stage 1,
            [`ProxyCodes`][tokenkit.train.objectives.ProxyCodes]).
        objective: What a step computes; default chosen from the model:
            [`MaskedTokens`][tokenkit.train.objectives.MaskedTokens] for a masked generator (class- or
            text-conditioned), [`DiffusionTokens`][tokenkit.train.objectives.DiffusionTokens] for a
            continuous-token one (``codebook_size`` None, MaskGen-KL),
            [`NextTokens`][tokenkit.train.objectives.NextTokens] for an autoregressive one,
            [`ProxyCodes`][tokenkit.train.objectives.ProxyCodes] with a ``teacher``, else
            [`Reconstruction`][tokenkit.train.objectives.Reconstruction].
        eval_data: Held-out images or dataset for [`evaluate`][tokenkit.train.trainer.Trainer.evaluate]
            (every ``eval_every`` steps).

    Non-finite values (``config.on_nonfinite``): the floating-point tensors of every micro-batch are
    checked for NaN / Inf before its forward pass (a bad batch counts like a non-finite loss; it still
    runs, with its NaN / Inf set to 0, so that every process takes part in the same collective
    operations and no ``ContractError`` is raised at the model's boundary), its loss and
    discriminator loss after it. At the last micro-batch of a step the processes agree (one
    all-reduce of a flag per step) whether any was not finite; if so, no optimizer steps, the
    gradients are zeroed, the buffers of the model and the discriminators (EMA codebooks, LeCAM
    averages) are put back and the EMA is not updated. ``stop`` (default) then raises
    [`NonFiniteLossError`][tokenkit.train.trainer.NonFiniteLossError] on every process. ``skip``
    warns (main process), counts the step in ``skipped_nonfinite`` (logged, and kept in checkpoints)
    and goes on: the step counter, the data position and the learning-rate schedules advance as for
    any step, so the run still ends after ``steps`` steps and resumes exactly; only the update is
    dropped. An fp16 loss scale still skips steps whose *gradients* overflow, as before.

    Examples:
        >>> import tempfile
        >>> import tokenkit as tk
        >>> from tokenkit.train import TrainConfig, Trainer
        >>> images = tk.data.sample_images(16, per_image=2, seed=0)  # (12, 3, 16, 16) crops of the bundled photos
        >>> with tempfile.TemporaryDirectory() as out:
        ...     config = TrainConfig(model="titok-tiny", knobs={"image_size": 16, "quantizer": "fsq"}, steps=3,
        ...                          batch_size=4, lr=1e-3, output_dir=out)
        ...     trainer = Trainer(config, images)
        ...     metrics = trainer.train(progress=False)
        ...     model = trainer.trained_model()  # the EMA weights, in eval mode
        >>> trainer.step, metrics["step"], sorted(k for k in metrics if k.startswith("loss"))
        (3, 3, ['loss'])
        >>> model.tokenize(images[:2]).shape
        torch.Size([2, 8])
    """

    def __init__(self, config: TrainConfig, data: torch.Tensor | Any, *, loss_fn: LossFn | None = None,
                 model: nn.Module | None = None, loss_module: nn.Module | None = None,
                 teacher: nn.Module | None = None, objective: Objective | None = None,
                 eval_data: torch.Tensor | Any | None = None) -> None:
        from accelerate import Accelerator

        self.config = config
        self.output = Path(config.output_dir)
        from accelerate.state import is_initialized

        # precision is applied by self.autocast(); accelerate's own setting stays "no" (and is left
        # alone when another Accelerator set up this process first: it cannot be changed)
        self.accelerator = Accelerator(cpu=config.cpu or multi_process_without_accelerator(),
                                       mixed_precision=None if is_initialized() else "no",
                                       gradient_accumulation_steps=config.grad_accum,
                                       log_with=list(config.log_with) or None, project_dir=str(self.output))
        self.precision = resolve_precision(config.precision, self.accelerator.device)
        """The resolved precision of this run (``fp32``, ``bf16`` or ``fp16``)."""
        self.scaler = _grad_scaler(self.precision, self.accelerator.device)
        self._announced = False
        torch.manual_seed(config.seed)
        random.seed(config.seed)
        self.model = model if model is not None else build(config.model, **dict(config.knobs))
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
                            if isinstance(m, Loss) and m.trains_discriminator]
        d_params = [p for m in self.adversarial for p in m.parameters() if p.requires_grad]
        d_lr = config.lr if config.d_lr is None else config.d_lr
        self.d_optimizer = (adamw(d_params, lr=d_lr, betas=tuple(config.betas), weight_decay=config.weight_decay)
                            if d_params else None)
        self.d_scaler = _grad_scaler(self.precision, self.accelerator.device) if d_params else None
        self.discriminators = _Discriminators(self.adversarial) if d_params else None
        """All discriminator losses as one module (DDP-wrapped with several processes), or ``None``."""
        # as officially: the generator's warm-up/cosine multiplier, over the steps the discriminator trains
        d_start = min((m.start_step for m in self.adversarial), default=0)
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
        self.skipped_nonfinite = 0
        """Steps dropped for a NaN / Inf input or loss (``on_nonfinite: skip``), over the whole run."""
        self._samples: torch.Tensor | None = None
        self._sample_texts: list[str] | None = None
        # the scheduler is stepped by hand once per optimizer step (a prepared one would step once per process)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        if self.discriminators is not None:  # the loss part keeps the unwrapped modules: checkpoints hold plain names
            self.discriminators, self.d_optimizer = self.accelerator.prepare(self.discriminators, self.d_optimizer)
        if config.log_with:
            self.accelerator.init_trackers(config.project, config={**_flat(dataclasses.asdict(config)),
                                                                   "precision_resolved": self.precision})

    def autocast(self):
        """The precision context of forward passes and losses: autocast in bf16 / fp16, nothing for fp32."""
        return precision_autocast(self.precision, self.accelerator.device)

    def _default_objective(self, loss_fn: LossFn | None, teacher: nn.Module | None) -> Objective:
        if isinstance(self.model, Generator):
            if loss_fn is not None or teacher is not None:
                raise ConfigError("a generator trains with a token objective; loss parts and teachers "
                                  "apply to tokenizers")
            if self.model.codebook_size is None:  # continuous tokens (MaskGen-KL)
                return DiffusionTokens()
            return NextTokens() if self.model.autoregressive else MaskedTokens()
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
            "skipped_nonfinite": self.skipped_nonfinite,
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
        self.skipped_nonfinite = int(state.get("skipped_nonfinite", 0))
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
            result, terms, applied = self._train_step()
            self.step += 1
            if applied and self.ema is not None:
                self.ema.update(acc.unwrap_model(self.model))
            bar.update(1)
            if self.step % config.log_every == 0 or self.step == end:
                last = {"step": self.step, "loss": result.loss.item(), "lr": self.scheduler.get_last_lr()[0],
                        **{k: float(v) for k, v in terms.items()},
                        **{k: float(v) for k, v in result.stats.items()},
                        **({} if self.scaler is None else {"loss_scale": float(self.scaler.get_scale())}),
                        **({"skipped_nonfinite": self.skipped_nonfinite} if config.on_nonfinite == "skip" else {}),
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

        A text-aware tokenizer (``takes_text``) decodes with the images' captions (the sample batch's
        ``text``), which are written next to the grid as ``step-XXXXXXX.txt`` (one line per column).
        Returns ``None`` (and writes nothing) for an objective without images, e.g. a generator's.
        """
        from torchvision.utils import make_grid, save_image

        if self._samples is None:
            first = to_device(self.data.first(self.config.sample_count), self.accelerator.device)
            self._samples = first.get("image")
            texts = first.get("text")
            self._sample_texts = list(texts) if texts is not None else None
        images = self._samples
        if images is None:
            return None
        model = self.trained_model()
        texts = self._sample_texts if getattr(model, "takes_text", False) else None  # captions guide TA-TiTok only
        with self.autocast():  # custom objectives without text keep their two-argument reconstruct
            rec = (self.objective.reconstruct(model, images) if texts is None
                   else self.objective.reconstruct(model, images, text=texts))
        if self.ema is None:
            self._train_mode(model)
        if rec is None:
            return None
        path = self.output / "samples" / f"step-{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_image(make_grid(torch.cat([images.float(), rec.float().clamp(0, 1)]).cpu(), nrow=images.shape[0],
                             padding=1), path)
        if texts is not None:
            path.with_suffix(".txt").write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
        return path

    def _train_step(self) -> tuple[StepOutput, dict[str, torch.Tensor], bool]:
        """One optimizer step over ``grad_accum`` micro-batches (see the class docstring on non-finite values).

        Each micro-batch is checked, its loss back-propagated, and so is the discriminators' loss of
        its detached reconstructions (divided by ``grad_accum`` like the generator's); at the last one
        both optimizers step once, or the step is dropped.

        Returns:
            The last micro-batch's result, its logged terms, and whether the optimizers stepped.
        """
        acc = self.accelerator
        active = self._active_discriminators()
        saved = [b.detach().clone() for b in self._buffers()]  # what a forward pass may change (EMA codebooks, LeCAM)
        models = (self.model,) if self.discriminators is None else (self.model, self.discriminators)
        checks: list[_Check] = []
        for _ in range(self.config.grad_accum):
            batch, finite_input = _finite_batch(to_device(self.data.next(), acc.device))
            with acc.accumulate(*models):
                with self.autocast():  # forward and loss; backward and the step run outside autocast
                    result = self.objective(self.model, batch, self.step)
                acc.backward(result.loss if self.scaler is None else self.scaler.scale(result.loss))
                d_loss = None
                if active is not None and result.output is not None:
                    with self.autocast():
                        d_loss = self.discriminators(result.images, result.output.images.detach(),
                                                     result.output.loss.detach(), self.step, active)
                    acc.backward(d_loss if self.d_scaler is None else self.d_scaler.scale(d_loss))
                    d_loss = d_loss.detach()
                checks.append(_Check(finite_input, result.loss.detach(), result.terms, d_loss))
                if acc.sync_gradients:
                    applied = self._finish_step(checks, active if d_loss is not None else None, saved)
                self.optimizer.zero_grad(set_to_none=True)
                if self.d_optimizer is not None:
                    self.d_optimizer.zero_grad(set_to_none=True)
        terms = dict(result.terms) if d_loss is None else {**result.terms, "discriminator_loss": d_loss}
        return result, terms, applied

    def _active_discriminators(self) -> tuple[bool, ...] | None:
        """Which adversarial terms train their discriminator at this step (``None``: none does)."""
        if self.d_optimizer is None:
            return None
        active = tuple(m.active(self.step) for m in self.adversarial)
        return active if any(active) else None

    def _buffers(self) -> list[torch.Tensor]:
        """The buffers of the model and the discriminators."""
        modules = [self.accelerator.unwrap_model(self.model)]
        if self.discriminators is not None:
            modules.append(self.discriminators)
        return [b for m in modules for b in m.buffers()]

    def _finish_step(self, checks: list[_Check], active: tuple[bool, ...] | None, saved: list[torch.Tensor]) -> bool:
        """At the last micro-batch: step the optimizers (the discriminators' when ``active``) and the
        schedules, or drop the step when any process saw a non-finite value; returns whether they stepped."""
        config, acc = self.config, self.accelerator
        losses = [c.loss.float() for c in checks] + [c.d_loss.float() for c in checks if c.d_loss is not None]
        bad = (~torch.isfinite(torch.stack(losses))).any().float() + (not all(c.finite_input for c in checks))
        if acc.num_processes > 1:  # all processes take the same decision
            bad = acc.reduce(bad, "sum")
        ok = not bad.item()
        if not ok:
            self._drop_step(checks, saved)
        else:
            _optimizer_step(self.optimizer, self.scaler,
                            lambda: acc.clip_grad_norm_(self.model.parameters(), config.clip)
                            if config.clip > 0 else None)
            if active is not None:
                for term, on in zip(self.adversarial, active):
                    if not on:  # computed at weight 0 (DDP needs every discriminator in the backward), not trained
                        for param in term.parameters():
                            param.grad = None
                params = [p for g in self.d_optimizer.param_groups for p in g["params"]]
                _optimizer_step(self.d_optimizer, self.d_scaler,
                                lambda: torch.nn.utils.clip_grad_norm_(params, config.clip) if config.clip > 0
                                else None)
        self.scheduler.step()
        if active is not None:
            self.d_scheduler.step()
        return ok

    def _drop_step(self, checks: list[_Check], saved: list[torch.Tensor]) -> None:
        """Undo what the bad step did (gradients, buffers), then raise (``stop``) or warn (``skip``)."""
        acc = self.accelerator
        self.optimizer.zero_grad(set_to_none=True)
        if self.d_optimizer is not None:
            self.d_optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, value in zip(self._buffers(), saved):
                buffer.copy_(value)
        found = _describe_nonfinite(checks)
        if acc.num_processes > 1:
            found = "; ".join(f"process {rank}: {text}" for rank, text in enumerate(_gather_text(found)) if text)
        what = f"step {self.step + 1}: {found}"
        if self.config.on_nonfinite == "stop":
            folder = self.output / "checkpoints"
            checkpoint = latest_checkpoint(folder) or max(folder.glob("step-*.pt"), default=None)
            raise NonFiniteLossError(
                f"{what}. Training stopped before the optimizer step: the model, EMA and optimizer state are "
                f"those after step {self.step}; the last good checkpoint is "
                f"{checkpoint if checkpoint is not None else 'none (no checkpoint was written yet)'}. To drop such "
                "steps and go on instead, set on_nonfinite: skip (tokenkit train ... train.on_nonfinite=skip)")
        self.skipped_nonfinite += 1
        if acc.is_main_process:
            warnings.warn(f"{what}; on_nonfinite=skip drops this step (no optimizer or EMA update; "
                          f"{self.skipped_nonfinite} dropped so far)", RuntimeWarning, stacklevel=5)

    def trained_model(self, ema: bool = True) -> nn.Module:
        """The trained model (its EMA weights by default), in eval mode."""
        model = self.ema.shadow if (ema and self.ema is not None) else self.accelerator.unwrap_model(self.model)
        return model.eval()


class _Discriminators(nn.Module):
    """The discriminator losses of all adversarial terms as one module's ``forward``, so that one DDP
    wrapper averages all their gradients across processes. Inactive terms count at weight 0: DDP
    needs every parameter in each backward."""

    def __init__(self, terms: list[nn.Module]) -> None:
        super().__init__()
        self.terms = nn.ModuleList(terms)

    def forward(self, images: torch.Tensor, reconstructions: torch.Tensor, quantizer_loss: torch.Tensor,
                step: int, active: tuple[bool, ...]) -> torch.Tensor:
        """Sum of the active terms' hinge (+ LeCAM) losses on real ``images`` and detached ``reconstructions``."""
        inputs = LossInputs(images=images, reconstructions=reconstructions, quantizer_loss=quantizer_loss, step=step)
        return sum(term.discriminator_loss(inputs) * (1.0 if on else 0.0) for term, on in zip(self.terms, active))


class _Check(NamedTuple):
    """What one micro-batch left for the finiteness decision at the end of the step."""

    finite_input: bool
    loss: torch.Tensor
    terms: Mapping[str, Any]
    d_loss: torch.Tensor | None


def _finite_batch(batch: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The batch and whether its floating-point tensors are finite (ids and labels cannot hold NaN).

    A non-finite batch comes back with its NaN / Inf set to 0: its step is dropped anyway, and the
    forward pass still runs, so that every process takes part in the same collective operations
    (a forward pass on NaN can fail inside a model: FSQ counts its codes with ``bincount``, for one).
    """
    floats = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}
    if all(bool(torch.isfinite(v).all()) for v in floats.values()):
        return batch, True
    return {**batch, **{k: torch.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0) for k, v in floats.items()}}, False


def _describe_nonfinite(checks: list[_Check]) -> str:
    """What was not finite in this process's micro-batches of a step ("" if all was)."""
    def finite(value: Any) -> bool:
        return bool(torch.isfinite(torch.as_tensor(value)).all())

    found = []
    if not all(c.finite_input for c in checks):
        found.append("the input batch holds NaN / Inf values")
    if not all(finite(c.loss) for c in checks):
        names = sorted({name for c in checks for name, value in c.terms.items() if not finite(value)})
        found.append("the loss is NaN / Inf" + (f" (terms: {', '.join(names)})" if names else ""))
    if not all(c.d_loss is None or finite(c.d_loss) for c in checks):
        found.append("the discriminator loss is NaN / Inf")
    return "; ".join(found)


def _gather_text(text: str) -> list[str]:
    """``text`` of every process, in process order (a collective: every process must call it)."""
    from accelerate.utils import gather_object

    return gather_object([text])


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
