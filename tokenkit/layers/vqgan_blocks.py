"""Convolutional blocks of the MaskGIT-VQGAN encoder and decoder (TITOK_SPEC §2.6).

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200;
the PyTorch port of its VQGAN comes from open-muse and is what TiTok uses as
its stage-1 teacher and stage-2 pixel decoder.

The official code pads every convolution TF-"SAME". For stride 1 and an odd
kernel ``k`` that is exactly symmetric zero padding ``k // 2``, so plain
``nn.Conv2d(..., padding=k // 2)`` gives identical results (all convolutions
here have stride 1 and kernel 1 or 3).

Attribute names (``norm1``, ``conv1``, ``block``, ``upsample_conv``, ...)
follow the official state-dict keys so that loading released weights is a
pure prefix rename.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from tokenkit.validation import check_positive_ints


def group_norm(channels: int, groups: int = 32) -> nn.GroupNorm:
    """The MaskGIT normalisation: affine ``GroupNorm(groups, channels, eps=1e-6)``."""
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


def conv(in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True) -> nn.Conv2d:
    """Stride-1 convolution with TF-"SAME" padding (= symmetric ``kernel_size // 2`` for odd kernels)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


def check_conv_widths(hidden_channels: int, channel_mult: tuple[int, ...], norm_groups: int,
                      **positive_ints: int) -> tuple[int, ...]:
    """Validate the options shared by the VQGAN encoder and decoder configs.

    Returns:
        ``channel_mult`` as a tuple (a list from JSON is accepted).

    Raises:
        ValueError: A non-positive int, an empty ``channel_mult`` or a level
            width that ``norm_groups`` does not divide.
    """
    values = dict(hidden_channels=hidden_channels, norm_groups=norm_groups, **positive_ints)
    check_positive_ints(SimpleNamespace(**values), *values)
    mult = tuple(channel_mult) if isinstance(channel_mult, (tuple, list)) else ()
    if not mult or not all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in mult):
        raise ValueError(f"channel_mult must be a non-empty tuple of positive ints, got {channel_mult!r}")
    bad = [hidden_channels * m for m in mult if (hidden_channels * m) % norm_groups]
    if bad:
        raise ValueError(f"norm_groups {norm_groups} must divide every level width hidden_channels * channel_mult[i]; "
                         f"it does not divide {bad}")
    return mult


class ResnetBlock(nn.Module):
    """MaskGIT residual block: ``(B, C_in, H, W)`` -> ``(B, C_out, H, W)``.

    ``h = conv2(SiLU(GN2(conv1(SiLU(GN1(x))))))`` with bias-free 3x3 convolutions.
    When ``C_in == C_out`` the block returns ``h + x``. When the widths differ
    it returns ``h + nin_shortcut(h)``: the bias-free 1x1 shortcut is applied to
    the block's *output* and the input ``x`` is discarded. This is the MaskGIT
    quirk (TITOK_SPEC §2.6, §7.1 item 2) that the released weights depend on;
    do not "fix" it into the usual ``h + nin_shortcut(x)``.

    Args:
        in_channels: Input channels ``C_in``.
        out_channels: Output channels ``C_out``.
        norm_groups: GroupNorm groups (32 in MaskGIT); must divide both widths.
    """

    def __init__(self, in_channels: int, out_channels: int, norm_groups: int = 32) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm1 = group_norm(in_channels, norm_groups)
        self.conv1 = conv(in_channels, out_channels, 3, bias=False)
        self.norm2 = group_norm(out_channels, norm_groups)
        self.conv2 = conv(out_channels, out_channels, 3, bias=False)
        # The official dropout (p = 0) between SiLU and conv2 is omitted.
        self.nin_shortcut = conv(out_channels, out_channels, 1, bias=False) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, C_in, H, W)``. Returns: ``(B, C_out, H, W)``."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        if self.nin_shortcut is not None:
            return h + self.nin_shortcut(h)  # MaskGIT quirk: shortcut of the output, not of x
        return h + x


class DownLevel(nn.Module):
    """One encoder resolution level: ``num_blocks`` ResnetBlocks, then optional 2x2 average pooling.

    The pooling has no parameters (official ``F.avg_pool2d(kernel_size=2, stride=2)``).

    Args:
        in_channels: Input channels of the first block.
        out_channels: Channels of every block output.
        num_blocks: Number of ResnetBlocks.
        downsample: Halve the resolution after the blocks.
        norm_groups: GroupNorm groups.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, *, downsample: bool,
                 norm_groups: int = 32) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_blocks
        self.block = nn.ModuleList(ResnetBlock(widths[j], widths[j + 1], norm_groups) for j in range(num_blocks))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, C_in, H, W)``. Returns: ``(B, C_out, H/2, W/2)`` (or ``H, W`` without downsampling)."""
        for block in self.block:
            x = block(x)
        return F.avg_pool2d(x, kernel_size=2, stride=2) if self.downsample else x


class UpLevel(nn.Module):
    """One decoder resolution level: ``num_blocks`` ResnetBlocks, then optional nearest x2 + 3x3 ``upsample_conv``.

    Args:
        in_channels: Input channels of the first block.
        out_channels: Channels of every block output.
        num_blocks: Number of ResnetBlocks.
        upsample: Double the resolution after the blocks (nearest neighbour, then a 3x3 conv with bias).
        norm_groups: GroupNorm groups.
    """

    def __init__(self, in_channels: int, out_channels: int, num_blocks: int, *, upsample: bool,
                 norm_groups: int = 32) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_blocks
        self.block = nn.ModuleList(ResnetBlock(widths[j], widths[j + 1], norm_groups) for j in range(num_blocks))
        self.upsample_conv = conv(out_channels, out_channels, 3) if upsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, C_in, H, W)``. Returns: ``(B, C_out, 2H, 2W)`` (or ``H, W`` without upsampling)."""
        for block in self.block:
            x = block(x)
        if self.upsample_conv is not None:
            x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return x
