"""TiTok's patch discriminator (official ``modeling/modules/discriminator.py``, ``NLayerDiscriminator`` L59).

Mark Weber's "improved" design used by TiTok stage 2 and the single-stage
recipes: a 5x5 stem, ``num_stages`` stages of 3x3 conv -> blur downsample ->
GroupNorm -> LeakyReLU(0.1), an adaptive max-pool to ``pool_size`` and a
1x1 / 5x5 head. Default: 1,909,889 parameters, (B, 3, 256, 256) -> patch
logits (B, 1, 16, 16). Module names follow the official state-dict keys
(``block_in.0``, ``blocks.{i}.{0,1,2}``, ``to_logits.{0,2}``), so a
checkpoint loads without renaming.

Difference from the official code: the blur pads for its own
kernel size, so blur sizes 3 and 5 also halve the resolution exactly (the
official ``BlurBlock.forward``, ``modeling/modules/discriminator.py`` L46-56,
always pads as for 4 taps). Size 4 is unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from tokenkit.kinds import Discriminator
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints

BLUR_KERNELS: dict[int, tuple[int, ...]] = {3: (1, 2, 1), 4: (1, 3, 3, 1), 5: (1, 4, 6, 4, 1)}
"""Binomial filter taps per blur size."""


def _same_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Conv2d:
    # TF-"SAME" at stride 1 with an odd kernel is symmetric padding k // 2.
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)


class BlurDownsample(nn.Module):
    """Depthwise binomial blur with stride 2, "same" padded: ``(B, C, H, W)`` -> ``(B, C, ceil(H/2), ceil(W/2))``.

    Args:
        size: Number of taps (3, 4 or 5); the filter is the normalised outer
            product of the binomial taps, held in the buffer ``kernel`` ``(1, 1, size, size)``.
    """

    def __init__(self, size: int = 4) -> None:
        super().__init__()
        if size not in BLUR_KERNELS:
            raise ValueError(f"blur size must be one of {sorted(BLUR_KERNELS)}, got {size}")
        taps = torch.tensor(BLUR_KERNELS[size], dtype=torch.float32)
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum())[None, None])

    @staticmethod
    def same_padding(length: int, size: int, stride: int = 2) -> tuple[int, int]:
        """(before, after) padding so that ``ceil(length / stride)`` outputs come out of ``size`` taps."""
        total = max((math.ceil(length / stride) - 1) * stride + size - length, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Blur and subsample ``x`` ``(B, C, H, W)``."""
        size = self.kernel.shape[-1]
        top, bottom = self.same_padding(x.shape[-2], size)
        left, right = self.same_padding(x.shape[-1], size)
        x = F.pad(x, (left, right, top, bottom))
        weight = self.kernel.to(x.dtype).expand(x.shape[1], 1, size, size)
        return F.conv2d(x, weight, stride=2, groups=x.shape[1])


@dataclasses.dataclass(frozen=True)
class NLayerConfig:
    """Options of the ``nlayer`` discriminator (defaults: the official one)."""

    in_channels: int = 3
    """Image channels."""
    hidden_channels: int = 128
    """Width of the stem and first stage; stage ``i`` ends with ``hidden_channels * 2**i`` channels."""
    num_stages: int = 3
    """Number of downsampling stages (each halves the resolution)."""
    blur_size: int | None = 4
    """Blur downsampling taps (3, 4 or 5); ``None`` uses 2x2 average pooling instead."""
    norm_groups: int = 32
    """GroupNorm groups (must divide every stage width)."""
    pool_size: int = 16
    """Side of the adaptive max-pool before the head (= side of the logit map)."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "in_channels", "hidden_channels", "num_stages", "norm_groups", "pool_size")
        if self.blur_size is not None and self.blur_size not in BLUR_KERNELS:
            raise ValueError(f"blur_size must be one of {sorted(BLUR_KERNELS)} or None, got {self.blur_size}")
        widths = [self.hidden_channels * 2**i for i in range(self.num_stages)]
        if any(w % self.norm_groups for w in widths):
            raise ValueError(f"norm_groups {self.norm_groups} must divide every stage width {widths}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> NLayerConfig:
        """A small valid config for tests (32x32 inputs; randomised by ``rng``)."""
        rng = rng or random.Random(0)
        return cls(hidden_channels=rng.choice((4, 8)), num_stages=rng.randint(1, 2),
                   blur_size=rng.choice((3, 4, 5, None)), norm_groups=4, pool_size=rng.choice((2, 4)))


@register("discriminator", "nlayer")
class NLayerDiscriminator(Discriminator):
    """Patch discriminator: images ``(B, C, H, W)`` in [0, 1] -> logits ``(B, 1, pool_size, pool_size)``.

    Args:
        config: [`NLayerConfig`][tokenkit.discriminators.nlayer.NLayerConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> d = tk.build_part("discriminator", tk.Part("nlayer", hidden_channels=8, norm_groups=4, pool_size=4))
        >>> d(torch.rand(2, 3, 64, 64)).shape
        torch.Size([2, 1, 4, 4])
    """

    Config = NLayerConfig

    def __init__(self, config: NLayerConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_channels
        self.block_in = nn.Sequential(_same_conv(config.in_channels, width, 5), nn.LeakyReLU(0.1))
        blocks = []
        for i in range(config.num_stages):
            out = config.hidden_channels * 2**i
            down = BlurDownsample(config.blur_size) if config.blur_size is not None else nn.AvgPool2d(2, 2)
            blocks.append(nn.Sequential(_same_conv(width, out, 3), down,
                                        nn.GroupNorm(config.norm_groups, out, eps=1e-5), nn.LeakyReLU(0.1)))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.pool = nn.AdaptiveMaxPool2d(config.pool_size)
        self.to_logits = nn.Sequential(_same_conv(width, width, 1), nn.LeakyReLU(0.1), _same_conv(width, 1, 5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Patch logits ``(B, 1, pool_size, pool_size)`` for ``images`` ``(B, C, H, W)``."""
        x = self.block_in(images)
        for block in self.blocks:
            x = block(x)
        return self.to_logits(self.pool(x))
