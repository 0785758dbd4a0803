"""MaskGIT iterative decoding, training-time masking and the masked-token loss.

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200.
Decoding starts from all-mask ids and, over ``steps`` steps, samples every
masked position (Gumbel-max at an annealed temperature), keeps the most
confident samples and re-masks the rest following a mask schedule.

``compat=True`` reproduces the official TiTok sampler step by step
(official ``ImageBert.generate``, ``modeling/maskgit.py`` L111-193): its guidance formulas and one-step lag,
confidence = raw logit of the sampled token, the re-mask count of sample 0
for the whole batch, and ties re-masking extra tokens. ``compat=False`` is the
clean variant: one guidance formula, log-probability confidence and exactly
the scheduled number of masks per sample. Both compute the conditional and
unconditional logits in one batched forward pass.

The condition is class labels ([`ClassCondition`][tokenkit.generators.sampling.ClassCondition]) or
anything with the [`Condition`][tokenkit.generators.sampling.Condition] interface, such as the text
embeddings of MaskGen (official ``MaskGen_VQ.generate``, ``modeling/maskgen.py`` L297-394: the same steps
as TiTok's with the ``cosine-ramp`` guidance decay, see [`guidance_at`][tokenkit.generators.sampling.guidance_at],
and [`TextSamplingConfig`][tokenkit.generators.sampling.TextSamplingConfig]).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from tokenkit.errors import ConfigError

SCHEDULES: dict[str, Callable[[float], float]] = {
    "arccos": lambda r: math.acos(r) / (math.pi / 2),
    "cosine": lambda r: math.cos(math.pi / 2 * r),
    "linear": lambda r: 1.0 - r,
}
"""Mask schedules ``gamma(r)``: the fraction of tokens still masked at progress ``r`` in [0, 1]."""

GUIDANCE_DECAYS = ("constant", "linear", "power-cosine", "cosine-ramp")


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """Sampling settings of a masked-token generator.

    The official ImageNet ones are ``model.generator`` in ``configs/infer/TiTok/titok_{l32,b64,s128}.yaml``
    (L27-35), with softmax annealing forced on by ``sample_imagenet_titok.py`` L116.
    """

    steps: int = 8
    """Decoding steps ``T``."""
    guidance: float = 3.0
    """Classifier-free guidance scale ``s0`` (0 disables guidance)."""
    guidance_decay: Literal["constant", "linear", "power-cosine", "cosine-ramp"] = "constant"
    """How the guidance scale evolves over the steps (see [`guidance_at`][tokenkit.generators.sampling.guidance_at];
    ``cosine-ramp`` is MaskGen's ``cosine``)."""
    guidance_pow: float = 3.0
    """Exponent of the ``power-cosine`` and ``cosine-ramp`` decays."""
    temperature: float = 4.5
    """Gumbel temperature ``tau0`` (annealed linearly to 0 at the last step)."""
    softmax_annealing: bool = False
    """Divide the logits by ``0.5 + 0.8 * (1 - r)`` (the official ImageNet setting)."""
    schedule: Literal["arccos", "cosine", "linear"] = "arccos"
    """Mask schedule (see [`SCHEDULES`][tokenkit.generators.sampling.SCHEDULES])."""
    compat: bool = True
    """Reproduce the official sampler's conventions exactly."""

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ConfigError(f"steps must be a positive int, got {self.steps!r}")
        if self.guidance_decay not in GUIDANCE_DECAYS:
            raise ConfigError(f"guidance_decay must be one of {', '.join(GUIDANCE_DECAYS)}, "
                              f"got {self.guidance_decay!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("temperature", "guidance", "guidance_pow"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TextSamplingConfig(SamplingConfig):
    """Sampling settings of a text-conditioned masked-token generator, with MaskGen's defaults.

    Official: ``model.maskgen`` of ``configs/infer/MaskGen/maskgen_vq_{l,xl}.yaml`` (``cfg`` 12.0,
    ``num_iter`` 16, ``temperature`` 2.0, ``sample_aesthetic_score`` 6.5) and the defaults of
    ``MaskGen_VQ.generate`` (``modeling/maskgen.py`` L297-309: ``cosine`` decay with power 1, softmax
    annealing on, arccos schedule; the official ``cosine`` decay is ``cosine-ramp`` here).
    """

    steps: int = 16
    guidance: float = 12.0
    guidance_decay: Literal["constant", "linear", "power-cosine", "cosine-ramp"] = "cosine-ramp"
    guidance_pow: float = 1.0
    temperature: float = 2.0
    softmax_annealing: bool = True
    aesthetic: float = 6.5
    """Aesthetic score of the micro-condition (generators without one ignore it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.aesthetic
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"aesthetic must be a finite number, got {value!r}")


class MaskedGenerator(Protocol):
    """What the sampler needs from a generator (the forward pass goes through a
    [`Condition`][tokenkit.generators.sampling.Condition])."""

    num_tokens: int
    mask_id: int


class Condition(Protocol):
    """What the sampler conditions on: ``batch`` items on ``device``, and the model's logits under them."""

    batch: int
    device: torch.device

    def logits(self, ids: torch.Tensor, guided: bool) -> torch.Tensor:
        """``(B, N, K)`` logits of ``ids`` ``(B, N)``; ``guided``: ``(2B, N, K)``, the conditional rows then
        the unconditional ones, from ONE batched forward pass."""


@dataclasses.dataclass(frozen=True)
class ClassCondition:
    """Class labels ``(B,)`` of a class-conditional generator (``model(ids, labels, drop_labels=...)``);
    the unconditional rows drop the label."""

    model: Callable[..., torch.Tensor]
    labels: torch.Tensor

    @property
    def batch(self) -> int:
        return self.labels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.labels.device

    def logits(self, ids: torch.Tensor, guided: bool) -> torch.Tensor:
        keep = torch.zeros_like(self.labels, dtype=torch.bool)
        if not guided:
            return self.model(ids, self.labels, drop_labels=keep)
        drop = torch.cat([keep, torch.ones_like(keep)])
        return self.model(torch.cat([ids, ids]), torch.cat([self.labels, self.labels]), drop_labels=drop)


def gumbel(uniform: torch.Tensor) -> torch.Tensor:
    """Gumbel noise from uniforms, clamped as the official sampler does: ``-log(-log(u))``."""
    return -torch.log((-torch.log(uniform.clamp(min=1e-20))).clamp(min=1e-20))


def guidance_at(config: SamplingConfig, step: int) -> float:
    """Guidance scale used at ``step`` (0-based).

    ``constant``: ``s0``. ``linear`` (TiTok): ``s0 * step / T`` (step 0 unguided: the official one-step lag).
    ``power-cosine`` (TiTok): ``(s0 - 1) * d + 1`` with ``d = (1 - cos(pi * (step / T) ** p)) / 2``.
    ``cosine-ramp`` (MaskGen's ``cosine``, official ``MaskGen_VQ.generate`` L330-337): the same at progress
    ``(step + 1) / T`` (no lag), computed in float32 as the official; ``s0 = 0`` disables guidance. Without
    ``compat`` both cosine decays give ``s0 * d``.

    Examples:
        >>> config = SamplingConfig(steps=4, guidance=5.0, guidance_decay="cosine-ramp", guidance_pow=1.0)
        >>> [round(guidance_at(config, step), 4) for step in range(4)]
        [1.5858, 3.0, 4.4142, 5.0]
    """
    t, s0 = config.steps, config.guidance
    if config.guidance_decay == "constant":
        return s0
    if config.guidance_decay == "linear":
        return step / t * s0  # step 0 is unguided (the official one-step lag)
    if config.guidance_decay == "cosine-ramp":
        ratio = (step + 1) / t
        if s0 == 0 or not config.compat:
            return s0 * (1 - math.cos(math.pi * ratio ** config.guidance_pow)) / 2
        power = torch.ones(1) * config.guidance_pow  # float32, as the official
        decay = (1 - torch.cos((ratio ** power) * torch.pi)) * 1 / 2
        return float((s0 - 1) * decay + 1)
    decay = (1 - math.cos(math.pi * (step / t) ** config.guidance_pow)) / 2
    return (s0 - 1) * decay + 1 if config.compat else s0 * decay


def _logits(condition: Condition, ids: torch.Tensor, scale: float, config: SamplingConfig) -> torch.Tensor:
    """Guided logits from ONE batched forward pass over ``[cond; uncond]``."""
    batch = ids.shape[0]
    if scale == 0:
        return condition.logits(ids, guided=False)
    both = condition.logits(ids, guided=True).float()
    cond, uncond = both[:batch], both[batch:]
    if config.compat and config.guidance_decay == "power-cosine":
        return uncond + scale * (cond - uncond)
    return cond + scale * (cond - uncond)


@torch.no_grad()
def generate(
    model: MaskedGenerator,
    labels: torch.Tensor | Condition,
    config: SamplingConfig,
    *,
    generator: torch.Generator | None = None,
    noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Decode token ids for class ``labels`` (or another condition).

    Args:
        model: A masked-token generator (e.g. [`MaskGIT`][tokenkit.generators.maskgit.MaskGIT]).
        labels: ``(B,)`` class ids (a [`ClassCondition`][tokenkit.generators.sampling.ClassCondition] of
            ``model``), or a [`Condition`][tokenkit.generators.sampling.Condition] (e.g. text).
        config: [`SamplingConfig`][tokenkit.generators.sampling.SamplingConfig].
        generator: Random generator for the Gumbel noise (reproducible sampling).
        noise: Replaces the uniform draws: ``noise(shape) -> U(0, 1) tensor``. Per step
            the sampler draws ``(B, N, K)`` for token sampling, then ``(B, N)`` for confidences.
        callback: Called as ``callback(step, ids)`` after each step.

    Returns:
        ``(B, N)`` int64 ids in ``[0, K)`` (no mask id remains).
    """
    condition = ClassCondition(model, labels) if isinstance(labels, torch.Tensor) else labels
    device = condition.device
    batch, n = condition.batch, model.num_tokens
    ids = torch.full((batch, n), model.mask_id, dtype=torch.long, device=device)
    draw = noise or (lambda shape: torch.rand(shape, generator=generator, device=device))
    for step in range(config.steps):
        ratio = (step + 1) / config.steps
        temperature = config.temperature * (1.0 - ratio)
        is_mask = ids == model.mask_id
        logits = _logits(condition, ids, guidance_at(config, step), config).float()
        if config.softmax_annealing:
            logits = logits / (0.5 + 0.8 * (1 - ratio))
        sampled = (logits + temperature * gumbel(draw(tuple(logits.shape)).to(device))).argmax(dim=-1)
        score = logits if config.compat else logits.log_softmax(dim=-1)
        confidence = score.gather(-1, sampled[..., None])[..., 0]
        sampled = torch.where(is_mask, sampled, ids)
        confidence = torch.where(is_mask, confidence, torch.inf)
        confidence = confidence + temperature * gumbel(draw((batch, n)).to(device))
        if step == config.steps - 1:
            ids = sampled
        else:
            target = math.floor(n * SCHEDULES[config.schedule](ratio))
            ids = torch.where(_remask(confidence, is_mask, target, config.compat), model.mask_id, sampled)
        if callback is not None:
            callback(step, ids)
    return ids


def _remask(confidence: torch.Tensor, is_mask: torch.Tensor, target: int, compat: bool) -> torch.Tensor:
    """Positions to mask again: the ``count`` least confident (``count`` = target clamped to [1, masked - 1])."""
    if compat:  # one count (from sample 0) for the batch; ties re-mask more
        count = max(1, min(int(is_mask[0].sum()) - 1, target))
        cutoff = confidence.sort(dim=-1).values[:, count - 1 : count]
        return confidence <= cutoff
    counts = (is_mask.sum(-1) - 1).clamp(max=target).clamp(min=1)
    order = confidence.argsort(dim=-1)
    positions = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(-1, order, positions)
    return ranks < counts[:, None]


def mask_tokens(indices: torch.Tensor, mask_id: int, *, schedule: str = "arccos",
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Training-time masking: a random fraction ``gamma(t)``, ``t ~ U(0, 1)``, per sample.

    Official: ``ImageBert.masking_input_tokens``, ``modeling/maskgit.py`` L195-206 (arccos schedule).

    Args:
        indices: ``(B, N)`` token ids.
        mask_id: Id written at masked positions.
        schedule: Mask schedule name.
        generator: Random generator.

    Returns:
        ``(masked_indices, mask)``: ``(B, N)`` ids with masks applied and the bool mask
        (at least one masked position per sample).
    """
    batch, n = indices.shape
    t = torch.rand(batch, generator=generator, device=indices.device)
    gamma = SCHEDULES[schedule]
    ratio = torch.tensor([gamma(float(v)) for v in t], device=indices.device).clamp(1e-6, 1.0)
    count = (n * ratio).round().clamp(min=1)
    ranks = torch.rand(batch, n, generator=generator, device=indices.device).argsort(dim=-1)
    mask = ranks < count[:, None]
    return torch.where(mask, mask_id, indices), mask


def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, *,
                      label_smoothing: float = 0.1, unmasked_weight: float = 0.1) -> torch.Tensor:
    """Cross-entropy over all positions, weight 1 on masked and ``unmasked_weight`` on the others.

    Args:
        logits: ``(B, N, K)``.
        targets: ``(B, N)`` true ids.
        mask: ``(B, N)`` bool, True where the input was masked.
        label_smoothing: Label smoothing of the cross-entropy (official 0.1).
        unmasked_weight: Weight of unmasked positions (official 0.1).

    Returns:
        Scalar loss, normalised by the sum of weights.
    """
    ce = F.cross_entropy(logits.transpose(1, 2).float(), targets, reduction="none", label_smoothing=label_smoothing)
    weights = torch.where(mask, 1.0, unmasked_weight).to(ce.dtype)
    return (ce * weights).sum() / (weights.sum() + 1e-8)


def sampling_config(value: SamplingConfig | Mapping | None, cls: type[SamplingConfig] = SamplingConfig
                    ) -> SamplingConfig:
    """A ``cls`` ([`SamplingConfig`][tokenkit.generators.sampling.SamplingConfig] or a subclass) from one,
    a mapping or ``None`` (the defaults)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, SamplingConfig):
        return cls(**{f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        return cls(**value)
    raise ValueError(f"sampling must be a SamplingConfig or a mapping, got {type(value).__name__}")
