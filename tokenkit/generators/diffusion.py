"""A compact Gaussian diffusion over token vectors: MAR's diffusion loss as MaskGen-KL uses it.

"Improved Denoising Diffusion Probabilistic Models" (IDDPM), https://arxiv.org/abs/2102.09672: the cosine
noise schedule (Eq. 17, betas capped at 0.999), the learned-range variance (Eq. 15: the model predicts
``eps`` and ``v`` in [-1, 1] interpolating ``log beta_t`` and the clipped posterior log-variance), the hybrid
loss (Section 3.1: ``L_simple`` on ``eps`` plus the variational bound, which trains only ``v``; here, as in the
official code, the bound in bits with weight 1, not the paper's 0.001) and respacing to fewer sampling steps
(Section 4). "Autoregressive Image Generation without Vector Quantization"
(MAR), https://arxiv.org/abs/2406.11838, Section 3: a small MLP conditioned on a transformer's output ``z``
denoises one token at a time.

Reproduces the official DiT-derived code that MaskGen-KL samples with (``modeling/diffusion/`` of
bytedance/1d-tokenizer: ``create_diffusion`` with ``noise_schedule="cosine"``, learned sigma and
``LossType.MSE``; ``GaussianDiffusion.training_losses``, ``p_mean_variance``, ``p_sample``; ``respace.py``
``space_timesteps``) number for number: the tables are float64 and each value is read as float32, as the
official ``_extract_into_tensor`` does; the model sees the *original* timestep of a respaced step.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``model(x (M, C), t (M,) int64 original timesteps) -> (M, 2C)``: ``eps`` then the variance value ``v``."""


def cosine_betas(num_steps: int = 1000, max_beta: float = 0.999) -> np.ndarray:
    """IDDPM's cosine schedule: ``beta_i = min(1 - abar((i+1)/T) / abar(i/T), max_beta)`` with
    ``abar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2``; float64 ``(T,)``.

    Examples:
        >>> betas = cosine_betas(1000)
        >>> betas.shape, round(float(betas[0]), 8), float(betas[-1])
        ((1000,), 4.128e-05, 0.999)
    """
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive int, got {num_steps!r}")

    def alpha_bar(s: float) -> float:
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array([min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
                     for i in range(num_steps)], dtype=np.float64)


def space_timesteps(num_steps: int, sections: int | str | Sequence[int]) -> list[int]:
    """The original timesteps kept when ``num_steps`` are respaced to ``sections`` (IDDPM Section 4).

    ``sections`` is a count, a comma-separated string of counts, or a list: the process is cut into that
    many equal parts (the first ``num_steps % len`` one step longer) and each part is strided evenly,
    including both ends, with the fractional stride accumulated step by step and rounded (Python's
    ``round``), exactly as the official ``space_timesteps`` (``modeling/diffusion/respace.py``) picks them.

    Raises:
        ValueError: A count larger than its part, or none.

    Examples:
        >>> space_timesteps(1000, 100)[:8]
        [0, 10, 20, 30, 40, 50, 61, 71]
        >>> space_timesteps(10, "2,3")
        [0, 4, 5, 7, 9]
    """
    if isinstance(sections, str):
        counts = [int(part) for part in sections.split(",") if part.strip()]
    elif isinstance(sections, int):
        counts = [sections]
    else:
        counts = [int(part) for part in sections]
    if not counts or any(count < 1 for count in counts):
        raise ValueError(f"sections must be positive step counts, got {sections!r}")
    base, extra = divmod(num_steps, len(counts))
    kept: set[int] = set()
    start = 0
    for index, count in enumerate(counts):
        length = base + (1 if index < extra else 0)
        if count > length:
            raise ValueError(f"cannot respace a part of {length} diffusion steps to {count} steps")
        stride = 1.0 if count == 1 else (length - 1) / (count - 1)
        position = 0.0
        for _ in range(count):
            kept.add(start + round(position))
            position += stride
        start += length
    return sorted(kept)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL divergence ``KL(N(mean1, e^logvar1) || N(mean2, e^logvar2))`` elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """Log-probability of ``x`` under ``N(mean, e^(2 log_scale))`` discretised to bins of width ``2/255``
    (the edge bins open), with the tanh approximation of the normal CDF (IDDPM's decoder term ``L_0``)."""

    def cdf(v: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (v + 0.044715 * torch.pow(v, 3))))

    centred = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_delta))


class GaussianDiffusion:
    """The tables of a (possibly respaced) diffusion process with learned-range variance and ``eps`` prediction.

    Args:
        betas: float64 ``(T0,)`` betas of the full process.
        timesteps: The original steps kept (sorted); ``None``: all (no respacing).

    Attributes:
        num_timesteps: Steps ``T`` of this process.
        timestep_map: ``(T,)`` int64: the original timestep of each step (what the model sees).

    Examples:
        >>> diffusion = cosine_diffusion(1000, 100)
        >>> diffusion.num_timesteps, diffusion.timestep_map[-3:].tolist()
        (100, [979, 989, 999])
    """

    def __init__(self, betas: np.ndarray, timesteps: Sequence[int] | None = None) -> None:
        base = np.asarray(betas, dtype=np.float64)
        if base.ndim != 1 or not ((base > 0) & (base <= 1)).all():
            raise ValueError("betas must be a 1-D array in (0, 1]")
        kept = list(range(len(base))) if timesteps is None else sorted(int(t) for t in timesteps)
        # betas of the kept steps, 1 - abar_kept / abar_previous_kept; recomputed even when all are kept
        # (as the official ``SpacedDiffusion``: the values then differ from ``betas`` in the last bits)
        cumulative, previous, new = np.cumprod(1.0 - base), 1.0, []
        for t in kept:
            new.append(1.0 - cumulative[t] / previous)
            previous = cumulative[t]
        base = np.array(new, dtype=np.float64)
        self.timestep_map = torch.tensor(kept, dtype=torch.int64)
        self.num_timesteps = len(base)
        self.betas = base
        alphas = 1.0 - base
        self.alphas_cumprod = np.cumprod(alphas)
        alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / self.alphas_cumprod - 1.0)
        self.posterior_variance = base * (1.0 - alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # the posterior variance is 0 at step 0: its log takes step 1's value there
        clipped = np.append(self.posterior_variance[1], self.posterior_variance[1:]) if len(base) > 1 else np.ones(1)
        self.posterior_log_variance_clipped = np.log(clipped)
        self.log_betas = np.log(base)
        self.posterior_mean_coef1 = base * np.sqrt(alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (1.0 - alphas_cumprod_prev) * np.sqrt(alphas) / (1.0 - self.alphas_cumprod)

    @staticmethod
    def _at(table: np.ndarray, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """``table[t]`` as float32 ``(M, 1)`` on ``like``'s device (read in float64, then rounded once)."""
        values = torch.from_numpy(table)[t.detach().cpu()].float()
        return values.to(like.device)[:, None]

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` for ``x0`` ``(M, C)``, ``t`` ``(M,)``."""
        return (self._at(self.sqrt_alphas_cumprod, t, x0) * x0
                + self._at(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise)

    def posterior(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and clipped log-variance of ``q(x_{t-1} | x_t, x_0)``."""
        mean = self._at(self.posterior_mean_coef1, t, xt) * x0 + self._at(self.posterior_mean_coef2, t, xt) * xt
        return mean, self._at(self.posterior_log_variance_clipped, t, xt)

    def p_mean_variance(self, output: torch.Tensor, x: torch.Tensor,
                        t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, log_variance, x0_prediction)`` of ``p(x_{t-1} | x_t)`` from a model output ``(M, 2C)``
        (``eps``, then ``v`` in [-1, 1] for the learned-range variance); no clipping of ``x0``."""
        eps, value = output.split(x.shape[1], dim=1)
        min_log = self._at(self.posterior_log_variance_clipped, t, x)
        max_log = self._at(self.log_betas, t, x)
        frac = (value + 1) / 2
        log_variance = frac * max_log + (1 - frac) * min_log
        x0 = self._at(self.sqrt_recip_alphas_cumprod, t, x) * x - self._at(self.sqrt_recipm1_alphas_cumprod, t, x) * eps
        mean, _ = self.posterior(x0, x, t)
        return mean, log_variance, x0

    def training_loss(self, model: ModelFn, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Per-row hybrid loss ``(M,)``: the mean squared error of ``eps`` plus the variational-bound term
        in bits (the KL to the true posterior, the discretised decoder NLL at ``t = 0``), computed with a
        detached ``eps`` so that it trains only the variance (official ``training_losses``, ``LossType.MSE``).

        Args:
            model: See [`ModelFn`][tokenkit.generators.diffusion.ModelFn].
            x0: ``(M, C)`` clean tokens.
            t: ``(M,)`` int64 steps in ``[0, T)``.
            noise: ``(M, C)`` standard normal noise.
        """
        xt = self.q_sample(x0, t, noise)
        output = model(xt, self.timestep_map.to(t.device)[t])
        eps, value = output.split(x0.shape[1], dim=1)
        mse = ((noise - eps) ** 2).mean(dim=1)
        mean, log_variance, _ = self.p_mean_variance(torch.cat([eps.detach(), value], dim=1), xt, t)
        true_mean, true_log_variance = self.posterior(x0, xt, t)
        kl = normal_kl(true_mean, true_log_variance, mean, log_variance).mean(dim=1) / math.log(2.0)
        nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance).mean(dim=1) / math.log(2.0)
        return mse + torch.where(t == 0, nll, kl)

    @torch.no_grad()
    def sample(self, model: ModelFn, noise: torch.Tensor, *, temperature: float = 1.0,
               generator: torch.Generator | None = None,
               step_noise: Callable[[int, tuple[int, ...]], torch.Tensor] | None = None) -> torch.Tensor:
        """Ancestral sampling from ``x_T = noise`` ``(M, C)`` down to ``x_0``: ``x_{t-1} = mean + temperature *
        exp(log_variance / 2) * z``, no noise at the last step (official ``p_sample_loop``, ``clip_denoised=False``).

        Args:
            model: See [`ModelFn`][tokenkit.generators.diffusion.ModelFn].
            noise: ``(M, C)`` float32 starting noise.
            temperature: Scale of the noise added at each step.
            generator: Random generator of the ``z`` draws.
            step_noise: Replaces the draws: ``step_noise(step, shape)`` for steps ``T-1 .. 1``.

        Returns:
            ``(M, C)`` float32 samples.
        """
        x = noise.float()
        for step in reversed(range(self.num_timesteps)):
            t = torch.full((x.shape[0],), step, dtype=torch.int64, device=x.device)
            mean, log_variance, _ = self.p_mean_variance(model(x, self.timestep_map.to(x.device)[t]).float(), x, t)
            if step == 0:
                x = mean
                break
            z = (step_noise(step, tuple(x.shape)).to(x) if step_noise is not None
                 else torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))
            x = mean + torch.exp(0.5 * log_variance) * z * temperature
        return x


@functools.lru_cache(maxsize=16)
def cosine_diffusion(num_steps: int = 1000, respacing: int | None = None) -> GaussianDiffusion:
    """The cosine-schedule diffusion of ``num_steps`` steps, respaced to ``respacing`` steps (``None``: all);
    cached (the tables are read-only).

    Examples:
        >>> train, sample = cosine_diffusion(1000), cosine_diffusion(1000, 100)
        >>> train.num_timesteps, sample.num_timesteps, bool(sample.betas[-1] > train.betas[-2])
        (1000, 100, True)
    """
    timesteps = None if respacing is None else space_timesteps(num_steps, respacing)
    return GaussianDiffusion(cosine_betas(num_steps), timesteps)
