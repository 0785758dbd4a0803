"""MAR's diffusion MLP: denoises one token vector conditioned on a transformer output ``z``.

"Autoregressive Image Generation without Vector Quantization" (MAR), https://arxiv.org/abs/2406.11838,
Section 3.2 and Appendix A: an input projection, residual MLP blocks modulated (adaLN, as DiT,
https://arxiv.org/abs/2212.09748) by the sum of a timestep embedding and a projection of ``z``, and a
final adaLN layer. Official MaskGen-KL code: ``SimpleMLPAdaLN``, ``ResBlock``, ``FinalLayer`` and
``TimestepEmbedder`` in ``modeling/modules/blocks.py`` (L442-630 of bytedance/1d-tokenizer).

The module names are the official ones, so a MaskGen-KL checkpoint's ``diffloss.net.*`` tensors are this
head's by dropping that prefix.
"""

from __future__ import annotations

import dataclasses
import math
import random

import torch
from torch import nn

from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class DiffusionHeadConfig:
    """Options of [`DiffusionHead`][tokenkit.generators.diffusion_head.DiffusionHead]."""

    token_dim: int = 16
    """Channels ``C`` of a token; the head outputs ``2C`` (``eps`` and the variance value)."""
    cond_dim: int = 1024
    """Width of the condition ``z``."""
    width: int = 1024
    """Hidden width of the MLP (official ``diffloss_w``)."""
    depth: int = 8
    """Residual blocks (official ``diffloss_d``)."""
    frequency_dim: int = 256
    """Sinusoidal features of the timestep before its MLP."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "token_dim", "cond_dim", "width", "depth", "frequency_dim")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> DiffusionHeadConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        return cls(token_dim=rng.randint(1, 4), cond_dim=rng.choice([8, 16]), width=rng.choice([8, 16]),
                   depth=rng.randint(1, 2), frequency_dim=rng.choice([8, 16]))


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features ``(M, dim)`` of timesteps ``(M,)``: ``[cos(t f_k), sin(t f_k)]`` with
    ``f_k = max_period ** (-k / (dim // 2))`` (cosines first; a zero column pads an odd ``dim``).

    Examples:
        >>> timestep_features(torch.tensor([0, 5]), 4)[0].tolist()
        [1.0, 1.0, 0.0, 0.0]
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        features = torch.cat([features, torch.zeros_like(features[:, :1])], dim=-1)
    return features


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN modulation ``x * (1 + scale) + shift``."""
    return x * (1 + scale) + shift


class TimestepEmbedding(nn.Module):
    """Timesteps ``(M,)`` -> ``(M, W)``: sinusoidal features, then Linear-SiLU-Linear (``mlp``)."""

    def __init__(self, width: int, frequency_dim: int = 256) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_features(t, self.frequency_dim).to(self.mlp[0].weight.dtype))


class AdaLNResBlock(nn.Module):
    """``x + gate * MLP(modulate(LN(x), shift, scale))`` with ``shift, scale, gate`` from ``y``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.in_ln = nn.LayerNorm(width, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.adaLN_modulation(y).chunk(3, dim=-1)
        return x + gate * self.mlp(modulate(self.in_ln(x), shift, scale))


class AdaLNFinalLayer(nn.Module):
    """``Linear(modulate(LN(x), shift, scale))`` (LayerNorm without affine) with ``shift, scale`` from ``y``."""

    def __init__(self, width: int, out_dim: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(width, out_dim)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(y).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class DiffusionHead(nn.Module):
    """Noisy tokens ``x (M, C)``, timesteps ``t (M,)`` and conditions ``c (M, cond_dim)`` -> ``(M, 2C)``:
    the predicted noise ``eps`` then the variance value ``v`` (see
    [`GaussianDiffusion`][tokenkit.generators.diffusion.GaussianDiffusion]).

    Initialised as MAR's (Xavier-uniform linears, zero biases, N(0, 0.02) timestep MLP, zero adaLN and
    output layers); a composition may re-initialise it (MaskGen-KL does).

    Args:
        config: [`DiffusionHeadConfig`][tokenkit.generators.diffusion_head.DiffusionHeadConfig].

    Examples:
        >>> head = DiffusionHead(DiffusionHeadConfig(token_dim=4, cond_dim=8, width=16, depth=2))
        >>> head(torch.randn(3, 4), torch.tensor([0, 10, 999]), torch.randn(3, 8)).shape
        torch.Size([3, 8])
    """

    def __init__(self, config: DiffusionHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.token_dim = config.token_dim
        self.time_embed = TimestepEmbedding(config.width, config.frequency_dim)
        self.cond_embed = nn.Linear(config.cond_dim, config.width)
        self.input_proj = nn.Linear(config.token_dim, config.width)
        self.res_blocks = nn.ModuleList(AdaLNResBlock(config.width) for _ in range(config.depth))
        self.final_layer = AdaLNFinalLayer(config.width, 2 * config.token_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MAR's initialisation (see the class note)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.time_embed.mlp[0].weight, std=0.02)
        nn.init.normal_(self.time_embed.mlp[2].weight, std=0.02)
        zeroed = [block.adaLN_modulation[-1] for block in self.res_blocks]
        zeroed += [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for layer in zeroed:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(M, C)``; t: ``(M,)`` timesteps (original, ``0 .. T0-1``); c: ``(M, cond_dim)``.

        Returns:
            ``(M, 2C)``.
        """
        y = self.time_embed(t) + self.cond_embed(c)
        h = self.input_proj(x)
        for block in self.res_blocks:
            h = block(h, y)
        return self.final_layer(h, y)

    def guided(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, uncond: torch.Tensor,
               scale: float | torch.Tensor) -> torch.Tensor:
        """Classifier-free guidance on ``eps`` in one batched pass over ``[cond; uncond]``:
        ``eps_u + scale * (eps_c - eps_u)``, with the conditional variance value (official
        ``SimpleMLPAdaLN.forward_with_cfg``, whose first half this returns).

        Args:
            x: ``(M, C)`` noisy tokens (shared by both branches).
            t: ``(M,)`` timesteps.
            cond: ``(M, cond_dim)`` conditional ``z``.
            uncond: ``(M, cond_dim)`` unconditional ``z``.
            scale: Guidance scale (1: conditional only).

        Returns:
            ``(M, 2C)``.
        """
        out = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, uncond]))
        out_cond, out_uncond = out.chunk(2)
        eps_cond, rest = out_cond.split(self.token_dim, dim=1)
        eps_uncond = out_uncond[:, :self.token_dim]
        return torch.cat([eps_uncond + scale * (eps_cond - eps_uncond), rest], dim=1)
