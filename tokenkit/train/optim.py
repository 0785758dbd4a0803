"""Optimizer groups, learning-rate schedule and EMA weights for training."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from tokenkit.kinds import TextEncoder


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay only on the weights of linear and convolution layers.

    Biases, normalisation parameters, embeddings, learned tokens and codebooks
    get no decay. This is what the official name-substring rule meant to do
    (``create_optimizer``, ``utils/train_utils.py`` L229-231), without exempting ``patch_embed`` or
    ``decoder_embed`` weights by accident.

    Examples:
        >>> from torch import nn
        >>> from tokenkit.train.optim import parameter_groups
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Embedding(8, 4))
        >>> [(len(group["params"]), group["weight_decay"]) for group in parameter_groups(model, 0.05)]
        [(1, 0.05), (4, 0.0)]
    """
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            is_weight = name == "weight" and isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d))
            (decay if is_weight else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def adamw(params: Any, **options: Any) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` with the fused implementation where torch has one for the parameters' device.

    The fused step is one kernel over all tensors instead of a dozen small ops per tensor
    (on a 2-core CPU, 1 ms instead of 12 ms for the demo's 74 tensors); the arithmetic is
    AdamW's either way. Other devices get torch's default implementation.

    Examples:
        >>> from torch import nn
        >>> from tokenkit.train.optim import adamw, parameter_groups
        >>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        >>> optimizer = adamw(parameter_groups(model, 0.05), lr=1e-4, betas=(0.9, 0.99))
        >>> type(optimizer).__name__, [group["weight_decay"] for group in optimizer.param_groups]
        ('AdamW', [0.05, 0.0])
    """
    params = list(params)
    tensors = [p for g in params for p in (g["params"] if isinstance(g, dict) else [g])]
    devices = {p.device.type for p in tensors}
    if len(devices) == 1 and devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in tensors):
        try:
            return torch.optim.AdamW(params, fused=True, **options)
        except (RuntimeError, ValueError):  # a torch without a fused kernel for these parameters
            pass
    return torch.optim.AdamW(params, **options)


def cosine_schedule(optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int,
                    base_lr: float, end_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up to ``base_lr``, then cosine decay to ``end_lr`` at ``total_steps`` (and ``end_lr`` after).

    Official: ``get_cosine_schedule_with_warmup``, ``utils/lr_schedulers.py`` L31-64.
    ``base_lr`` is the optimizer's learning rate; step the schedule once per optimizer step.

    Examples:
        >>> import torch
        >>> from tokenkit.train.optim import cosine_schedule
        >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        >>> schedule = cosine_schedule(optimizer, warmup_steps=2, total_steps=6, base_lr=1.0, end_lr=0.0)
        >>> lrs = []
        >>> for _ in range(8):
        ...     lrs.append(round(schedule.get_last_lr()[0], 4))
        ...     optimizer.step()
        ...     schedule.step()
        >>> lrs
        [0.5, 1.0, 1.0, 0.8536, 0.5, 0.1464, 0.0, 0.0]
    """

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return (end_lr + (base_lr - end_lr) * 0.5 * (1 + math.cos(math.pi * progress))) / base_lr

    # Not SequentialLR(LinearLR, CosineAnnealingLR): their recursive updates miss this closed form in the last
    # bits (936 of 1000 steps differ), the cosine rises again after total_steps, and warmup_steps=0 is refused.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class EMA(AveragedModel):
    """Exponential moving average of a model's parameters (buffers are copied), on ``torch.optim.swa_utils``.

    The average starts as a copy of the model (in eval mode, without gradients). Update ``k``
    (counted from 0) moves each parameter towards the model's with ``lerp`` weight ``1 - d``,
    ``d = min(decay, (1 + k) / (10 + k))`` (the official open-muse warm-up), so early averages follow
    the model closely; buffers are copied from the model. ``n_averaged`` counts the models averaged,
    the starting copy included (``k = n_averaged - 1``), so ``AveragedModel.update_parameters`` never
    takes its copy-the-model path. The averaged module is ``module`` (also ``shadow``); state dicts
    of the former ``EMA`` (``shadow.*`` and ``updates``) still load. Frozen text encoders (kind
    ``text_encoder``, e.g. TA-TiTok's CLIP tower) are shared with the model, not copied: they never
    change, and their weights are in no state dict.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> from tokenkit.train.optim import EMA
        >>> model = nn.Linear(2, 2)
        >>> with torch.no_grad():
        ...     _ = model.weight.zero_()
        >>> ema = EMA(model, decay=0.999)
        >>> with torch.no_grad():
        ...     _ = model.weight.fill_(1.0)
        >>> ema.update(model)  # k = 0: d = min(0.999, 1 / 10), the average moves 90 % of the way
        >>> round(ema.shadow.weight[0, 0].item(), 4)
        0.9
        >>> ema.update(model)  # k = 1: d = 2 / 11
        >>> round(ema.shadow.weight[0, 0].item(), 4), int(ema.n_averaged)
        (0.9818, 3)
        >>> sorted(ema.state_dict())
        ['module.bias', 'module.weight', 'n_averaged']
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__(model, multi_avg_fn=self._warmup_lerp)
        self.decay = decay
        _share_text_encoders(model, self.module)
        self.module.eval().requires_grad_(False)
        self.n_averaged.fill_(1)  # the starting copy

    @property
    def shadow(self) -> nn.Module:
        """The averaged model (``self.module``)."""
        return self.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s current weights (``AveragedModel.update_parameters``)."""
        self.update_parameters(model)

    def _warmup_lerp(self, averages: list[torch.Tensor], params: list[torch.Tensor], n_averaged: Any) -> None:
        """``multi_avg_fn``: one ``lerp`` over a group of tensors of one device and dtype."""
        k = int(self.n_averaged) - 1  # the count on the CPU (``n_averaged`` is its copy on the group's device)
        decay = min(self.decay, (1 + k) / (10 + k))
        torch._foreach_lerp_(averages, [p.to(a.dtype) for a, p in zip(averages, params)], 1 - decay)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # state dicts of the former EMA(nn.Module): the average under ``shadow.``, ``updates`` counting updates only
        for key in [k for k in state_dict if k.startswith(prefix + "shadow.")]:
            state_dict[prefix + "module." + key[len(prefix + "shadow."):]] = state_dict.pop(key)
        if prefix + "updates" in state_dict:
            state_dict[prefix + "n_averaged"] = state_dict.pop(prefix + "updates") + 1
        super()._load_from_state_dict(state_dict, prefix, *args)


def _share_text_encoders(model: nn.Module, copy: nn.Module) -> None:
    """Put ``model``'s frozen text encoders into its ``copy`` in place of their copies (no second CLIP tower)."""

    for name, module in model.named_modules():
        if name and isinstance(module, TextEncoder):
            parent, _, child = name.rpartition(".")
            setattr(copy.get_submodule(parent) if parent else copy, child, module)
