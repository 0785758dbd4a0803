"""Raster-order sampling of an autoregressive generator, with a KV cache and classifier-free guidance.

RAR's sampler, "Randomized Autoregressive Visual Generation", https://arxiv.org/abs/2411.00776
(official ``RAR.generate``, ``modeling/rar.py`` L408-456 of bytedance/1d-tokenizer): one token per
step, the conditional and unconditional logits from ONE batched forward pass, the guidance scale
following a schedule over the ``N`` steps, the logits divided by the temperature, then a draw from
the softmax. The cache lives here, in the sampler's state: the first step runs the whole prefix (the
start token and the class) and each later step one new token against the cached keys and values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from tokenkit.errors import ConfigError
from tokenkit.layers.kv_cache import KVCache

GUIDANCE_DECAYS = ("constant", "linear", "power-cosine")


@dataclasses.dataclass(frozen=True)
class ARSamplingConfig:
    """Sampling settings of an autoregressive generator.

    The official RAR ImageNet settings are in ``README_RAR.md`` (``randomize_temperature``,
    ``guidance_scale``, ``guidance_scale_pow`` per model size).

    Examples:
        >>> ARSamplingConfig(guidance=16.0, guidance_pow=2.75).guidance_decay
        'power-cosine'
        >>> ARSamplingConfig(top_p=1.5)
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: top_p must be in (0, 1], got 1.5
    """

    guidance: float = 4.0
    """Classifier-free guidance scale ``g`` (0: no unconditional pass)."""
    guidance_decay: Literal["constant", "linear", "power-cosine"] = "power-cosine"
    """How the scale goes from 1 at the first token to ``g`` (``constant``: ``g`` throughout)."""
    guidance_pow: float = 0.0
    """Exponent ``p`` of ``power-cosine``: ``1 + (g - 1) (1 - cos(pi (t / N)^p)) / 2`` (``p = 0``: constant ``g``)."""
    temperature: float = 1.0
    """Softmax temperature (0: the most likely token, no draw)."""
    top_k: int = 0
    """Draw among the ``k`` most likely tokens only (0: all)."""
    top_p: float = 1.0
    """Draw among the most likely tokens whose probabilities add up to ``top_p`` (nucleus; 1: all)."""
    kv_cache: bool = True
    """Reuse the keys and values of earlier positions (else every step recomputes the whole prefix)."""

    def __post_init__(self) -> None:
        if self.guidance_decay not in GUIDANCE_DECAYS:
            raise ConfigError(f"guidance_decay must be one of {', '.join(GUIDANCE_DECAYS)}, "
                              f"got {self.guidance_decay!r}")
        for name in ("guidance", "guidance_pow", "temperature"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ConfigError(f"top_k must be an int >= 0, got {self.top_k!r}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, (int, float)) or not 0 < self.top_p <= 1:
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not isinstance(self.kv_cache, bool):
            raise ConfigError(f"kv_cache must be a bool, got {self.kv_cache!r}")


class AutoregressiveModel(Protocol):
    """What the sampler needs from a generator."""

    num_tokens: int
    codebook_size: int

    def condition_ids(self, labels: torch.Tensor, drop: torch.Tensor) -> torch.Tensor: ...

    def new_cache(self, batch: int) -> KVCache: ...

    def next_logits(self, condition: torch.Tensor, ids: torch.Tensor, cache: KVCache | None) -> torch.Tensor: ...


def guidance_at(config: ARSamplingConfig, step: int, num_tokens: int) -> torch.Tensor:
    """Guidance scale for token ``step`` (0-based) of ``num_tokens``, a float32 scalar tensor.

    Computed in float32 as the official sampler does (``modeling/rar.py`` L429-433), so that guided
    logits match it bit for bit.

    Examples:
        >>> config = ARSamplingConfig(guidance=16.0, guidance_pow=2.75)
        >>> [round(float(guidance_at(config, t, 256)), 3) for t in (0, 128, 255)]
        [1.0, 1.803, 15.996]
        >>> float(guidance_at(ARSamplingConfig(guidance=4.0, guidance_pow=0.0), 0, 256))  # p = 0: constant
        4.0
    """
    g = config.guidance
    if config.guidance_decay == "constant":
        return torch.tensor(g, dtype=torch.float32)
    progress = step / num_tokens
    if config.guidance_decay == "linear":
        return torch.tensor(1 + (g - 1) * progress, dtype=torch.float32)
    pow_ = torch.ones(1) * config.guidance_pow
    scale_step = (1 - torch.cos((progress**pow_) * torch.pi)) * 1 / 2
    return ((g - 1) * scale_step + 1)[0]


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """``logits`` ``(B, K)`` with tokens outside the top ``k`` / the nucleus ``p`` set to ``-inf``.

    The nucleus keeps the most likely tokens until their probabilities add up to ``top_p`` (the token
    that crosses it included; always at least one).

    Examples:
        >>> logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]])
        >>> filter_logits(logits, top_k=2)
        tensor([[3., 2., -inf, -inf]])
        >>> filter_logits(logits, top_p=0.8)  # softmax: 0.64, 0.24, 0.09, 0.03
        tensor([[3., 2., -inf, -inf]])
    """
    if top_k and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs
        drop_sorted = before >= top_p  # the mass before a token already reaches top_p
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), -torch.inf)
    return logits


def draw_token(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """One token per row of ``logits`` ``(B, K)`` from the softmax, by inverse CDF at ``uniform`` ``(B,)``.

    Examples:
        >>> logits = torch.log(torch.tensor([[0.5, 0.25, 0.25]]))
        >>> [int(draw_token(logits, torch.tensor([u]))) for u in (0.1, 0.6, 0.9)]
        [0, 1, 2]
    """
    cdf = F.softmax(logits.float(), dim=-1).cumsum(dim=-1)
    return (cdf < uniform[:, None].to(cdf)).sum(dim=-1).clamp(max=logits.shape[-1] - 1)


@torch.no_grad()
def generate_autoregressive(
    model: AutoregressiveModel,
    labels: torch.Tensor,
    config: ARSamplingConfig,
    *,
    generator: torch.Generator | None = None,
    noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
    callback: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Sample ``N`` token ids per class label, in raster order.

    Args:
        model: An autoregressive generator (e.g. [`ARGenerator`][tokenkit.generators.ar.ARGenerator]).
        labels: ``(B,)`` class ids.
        config: [`ARSamplingConfig`][tokenkit.generators.ar_sampling.ARSamplingConfig].
        generator: Random generator of the draws (reproducible sampling).
        noise: Replaces the draws: ``noise((B,)) -> U(0, 1)`` once per token (not called at temperature 0).
        callback: ``callback(step, ids)`` after each token, with the ``(B, step + 1)`` ids so far.

    Returns:
        ``(B, N)`` int64 ids in ``[0, K)``.
    """
    device, batch, n = labels.device, labels.shape[0], model.num_tokens
    guided = config.guidance != 0
    keep = torch.zeros_like(labels, dtype=torch.bool)
    condition = model.condition_ids(labels, keep)
    if guided:  # [conditional; unconditional] in one batch
        condition = torch.cat([condition, model.condition_ids(labels, ~keep)])
    cache = model.new_cache(condition.shape[0]) if config.kv_cache else None
    draw = noise or (lambda shape: torch.rand(shape, generator=generator, device=device))
    # one id buffer for every row of the batch ([cond; uncond] share their ids), filled column by column
    rows = torch.zeros(condition.shape[0], n, dtype=torch.long, device=device)
    for step in range(n):
        logits = model.next_logits(condition, rows[:, :step], cache).float()
        if guided:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + (cond - uncond) * guidance_at(config, step, n).to(device)
        if config.temperature == 0:
            token = logits.argmax(dim=-1)
        else:
            logits = filter_logits(logits / config.temperature, config.top_k, config.top_p)
            token = draw_token(logits, draw((batch,)).to(device))
        rows[:, step] = token.repeat(rows.shape[0] // batch)
        if callback is not None:
            callback(step, rows[:batch, : step + 1])
    return rows[:batch]


def ar_sampling_config(value: ARSamplingConfig | Mapping | None) -> ARSamplingConfig:
    """An [`ARSamplingConfig`][tokenkit.generators.ar_sampling.ARSamplingConfig] from itself, a mapping or ``None``.

    Examples:
        >>> ar_sampling_config({"guidance": 2.0}).guidance
        2.0
    """
    if value is None:
        return ARSamplingConfig()
    if isinstance(value, ARSamplingConfig):
        return value
    if isinstance(value, Mapping):
        return ARSamplingConfig(**value)
    raise ValueError(f"sampling must be an ARSamplingConfig or a mapping, got {type(value).__name__}")
