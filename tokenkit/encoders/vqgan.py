"""MaskGIT-VQGAN convolutional encoder (official ``Encoder``, ``modeling/modules/maskgit_vqgan.py`` L157-194).

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200.

Images ``(B, C, H, W)`` in [0, 1] (no normalisation) are downsampled by
``2**(len(channel_mult) - 1)`` (16 for the released f16 model) to a grid of
latents, returned row-major as ``(B, (H/f)**2, z_channels)``. This is the
encoder of the ``maskgit-vqgan`` tokenizer (TiTok's stage-1 teacher).

Layout: ``conv_in`` (3x3, no bias) -> ``down.{i}`` (``block.{j}`` ResnetBlocks,
then 2x2 average pooling except after the last level; the pooling has no
parameters) -> ``mid`` (ResnetBlocks) -> ``norm_out`` -> SiLU -> ``conv_out`` (1x1).
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokenkit.contracts import check_images
from tokenkit.kinds import Encoder
from tokenkit.layers.vqgan_blocks import DownLevel, ResnetBlock, check_conv_widths, conv, group_norm
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class VQGANEncoderConfig:
    """Options of the ``vqgan`` encoder (defaults: the released MaskGIT-VQGAN f16 encoder)."""

    image_size: int = 256
    """Input height and width; must be divisible by the downsampling factor."""
    in_channels: int = 3
    """Image channels."""
    hidden_channels: int = 128
    """Base width; level ``i`` has ``hidden_channels * channel_mult[i]`` channels."""
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    """Width multipliers per level, finest first; ``len - 1`` 2x2 poolings."""
    num_res_blocks: int = 2
    """ResnetBlocks per level (and in the middle)."""
    z_channels: int = 256
    """Latent width ``D`` (``conv_out`` output channels)."""
    norm_groups: int = 32
    """GroupNorm groups; must divide every level width."""

    def __post_init__(self) -> None:
        mult = check_conv_widths(self.hidden_channels, self.channel_mult, self.norm_groups,
                                 image_size=self.image_size, in_channels=self.in_channels,
                                 num_res_blocks=self.num_res_blocks, z_channels=self.z_channels)
        object.__setattr__(self, "channel_mult", mult)
        if self.image_size % self.downsample_factor:
            raise ValueError(f"image_size {self.image_size} is not divisible by the downsampling factor "
                             f"{self.downsample_factor} = 2**(len(channel_mult) - 1)")

    @property
    def downsample_factor(self) -> int:
        """Input pixels per latent side: ``2**(len(channel_mult) - 1)``."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def out_dim(self) -> int:
        """Latent width ``D`` (= ``z_channels``)."""
        return self.z_channels

    @property
    def num_tokens(self) -> int:
        """Latents per image ``N = (image_size // downsample_factor)**2``."""
        return (self.image_size // self.downsample_factor) ** 2

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> VQGANEncoderConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        mult = tuple(rng.choice([1, 2]) for _ in range(rng.randint(1, 3)))
        return cls(image_size=2 ** (len(mult) - 1) * rng.randint(2, 3),  # final grid >= 2x2 for GroupNorm
                   in_channels=rng.choice([1, 3]),
                   hidden_channels=8 * rng.randint(1, 2), channel_mult=mult, num_res_blocks=rng.randint(1, 2),
                   z_channels=rng.randint(1, 8), norm_groups=rng.choice([4, 8]))


@register("encoder", "vqgan")
class VQGANEncoder(Encoder):
    """MaskGIT-VQGAN encoder: images ``(B, C, H, W)`` -> latents ``(B, (H/f)**2, z_channels)``.

    Args:
        config: [`VQGANEncoderConfig`][tokenkit.encoders.vqgan.VQGANEncoderConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> enc = tk.build_part("encoder", tk.Part("vqgan", image_size=16, hidden_channels=32, channel_mult=(1, 2),
        ...                                        num_res_blocks=1, z_channels=8, norm_groups=8))
        >>> enc(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 64, 8])
    """

    Config = VQGANEncoderConfig

    def __init__(self, config: VQGANEncoderConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.hidden_channels * m for m in config.channel_mult]
        groups, blocks, last = config.norm_groups, config.num_res_blocks, len(widths) - 1
        self.conv_in = conv(config.in_channels, config.hidden_channels, 3, bias=False)
        in_widths = [config.hidden_channels, *widths[:-1]]
        self.down = nn.ModuleList(
            DownLevel(in_widths[i], widths[i], blocks, downsample=i != last, norm_groups=groups)
            for i in range(len(widths)))
        self.mid = nn.ModuleList(ResnetBlock(widths[-1], widths[-1], groups) for _ in range(blocks))
        self.norm_out = group_norm(widths[-1], groups)
        self.conv_out = conv(widths[-1], config.z_channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            images: ``(B, in_channels, image_size, image_size)`` in [0, 1].

        Returns:
            latents ``(B, N, z_channels)``, ``N = (image_size / f)**2``, grid cells row-major.

        Raises:
            ContractError: Wrong rank, channels, size or dtype (the value range is
                checked by ``Tokenizer``, not here).
        """
        check_images(images, channels=self.config.in_channels, image_size=self.config.image_size, check_range=False)
        x = self.conv_in(images)
        for level in self.down:
            x = level(x)
        for block in self.mid:
            x = block(x)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return rearrange(x, "b c h w -> b (h w) c")
