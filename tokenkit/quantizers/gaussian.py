"""Diagonal Gaussian (KL / VAE) bottleneck (official ``DiagonalGaussianDistribution``).

Official code: ``modeling/quantizer/quantizer.py`` L133-170.

The latent width is ``2 * channels``: the first half is the mean, the second
the log-variance (clamped). Training samples ``mean + std * eps``; evaluation
returns the mean (the mode), so encoding is deterministic.
"""

from __future__ import annotations

import dataclasses
import random

import torch

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


class DiagonalGaussian:
    """Posterior ``N(mean, exp(logvar))`` over codes ``(B, N, C)``.

    Args:
        parameters: ``(B, N, 2C)``: mean then log-variance.
        logvar_range: Clamp of the log-variance.
    """

    def __init__(self, parameters: torch.Tensor, logvar_range: tuple[float, float] = (-30.0, 20.0)) -> None:
        params = parameters.float()
        self.mean, logvar = params.chunk(2, dim=-1)
        self.logvar = logvar.clamp(*logvar_range)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """``mean + std * eps`` with ``eps`` drawn on the tensors' device from ``generator``."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        """The mean ``(B, N, C)``."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to the standard normal, summed over channels: ``(B, N)``."""
        return 0.5 * (self.mean.pow(2) + self.var - 1.0 - self.logvar).sum(dim=-1)


@dataclasses.dataclass(frozen=True)
class GaussianConfig:
    """Options of the ``gaussian`` bottleneck."""

    channels: int = 16
    """Code width ``C`` (the latent width is ``2 * C``)."""
    logvar_min: float = -30.0
    """Lower clamp of the log-variance."""
    logvar_max: float = 20.0
    """Upper clamp of the log-variance."""
    sample_in_eval: bool = False
    """Sample in eval mode too (the official README does); default returns the mean."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "channels")
        if self.logvar_min >= self.logvar_max:
            raise ValueError(f"logvar_min {self.logvar_min} must be below logvar_max {self.logvar_max}")

    @property
    def in_dim(self) -> int:
        """Latent width read: mean and log-variance."""
        return 2 * self.channels

    @property
    def out_dim(self) -> int:
        """Code width written."""
        return self.channels

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> GaussianConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        return cls(channels=rng.randint(1, 8))


@register("quantizer", "gaussian")
class GaussianBottleneck(Quantizer):
    """KL bottleneck: latents ``(B, N, 2C)`` -> codes ``(B, N, C)``, ``indices=None``.

    ``loss`` is the KL summed over tokens and channels, averaged over the batch.

    Args:
        config: [`GaussianConfig`][tokenkit.quantizers.gaussian.GaussianConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> kl = tk.build_part("quantizer", tk.Part("gaussian", channels=4)).eval()
        >>> out = kl(torch.randn(2, 3, 8))
        >>> out.codes.shape, out.indices
        (torch.Size([2, 3, 4]), None)
    """

    Config = GaussianConfig

    def __init__(self, config: GaussianConfig) -> None:
        super().__init__()
        self.config = config

    def posterior(self, latents: torch.Tensor) -> DiagonalGaussian:
        """The posterior for ``latents`` ``(B, N, 2C)``."""
        return DiagonalGaussian(latents, (self.config.logvar_min, self.config.logvar_max))

    def forward(self, latents: torch.Tensor, generator: torch.Generator | None = None) -> QuantizerOutput:
        """Sample (training or ``sample_in_eval``) or take the mean; ``loss`` is the KL."""
        posterior = self.posterior(latents)
        sample = self.training or self.config.sample_in_eval
        codes = posterior.sample(generator) if sample else posterior.mode()
        kl = posterior.kl()
        loss = kl.sum() / max(latents.shape[0], 1)
        stats = {"kl": loss.detach(), "std": posterior.std.detach().mean()}
        return QuantizerOutput(codes.to(latents.dtype), None, loss, stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Not available: a continuous bottleneck has no codebook."""
        raise TypeError("the gaussian bottleneck is continuous: it has no token ids to look up")
