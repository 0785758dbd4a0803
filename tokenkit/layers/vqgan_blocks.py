"""Convolutional blocks of the MaskGIT-VQGAN encoder and decoder.

Official: ``modeling/modules/maskgit_vqgan.py`` (``Conv2dSame`` L38, ``ResnetBlock`` L53,
``DownsamplingBlock`` L93, ``UpsamplingBlock`` L122).

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200;
the PyTorch port of its VQGAN comes from open-muse and is what TiTok uses as
its stage-1 teacher and stage-2 pixel decoder.

The official code pads every convolution TF-"SAME". For stride 1 and an odd
kernel ``k`` that is exactly symmetric zero padding ``k // 2``, so plain
``nn.Conv2d(..., padding=k // 2)`` gives identical results (all convolutions
here have stride 1 and kernel 1 or 3).

Speed (same parameters, same math): without autograd the blocks apply SiLU and
the residual add in place, and a decoder level's "nearest x2 upsampling, then
3x3 convolution" runs as one stride-2 transposed convolution on the
low-resolution input (see [`upsample_conv`][tokenkit.layers.vqgan_blocks.upsample_conv]):
4 instead of 9 multiply-adds per output value and no upsampled copy.

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


def silu_(x: torch.Tensor) -> torch.Tensor:
    """SiLU, in place when autograd is off (``x`` must then be a temporary the caller owns)."""
    return F.silu(x, inplace=not torch.is_grad_enabled())


def upsample_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """The ``(I, O, 4, 4)`` transposed-convolution kernel equal to nearest x2 upsampling + a 3x3 convolution.

    Output row ``2i`` of "upsample, then conv with kernel rows ``w0, w1, w2``" reads
    input rows ``i - 1`` (``w0``) and ``i`` (``w1 + w2``); row ``2i + 1`` reads rows ``i``
    (``w0 + w1``) and ``i + 1`` (``w2``); the same holds for columns. A stride-2,
    padding-1 transposed convolution with taps ``[w2, w1 + w2, w0 + w1, w0]`` per axis
    computes exactly these sums (zero padding included), so the two differ only by
    float rounding of the summed taps.

    Args:
        weight: ``(O, I, 3, 3)`` convolution kernel.
    """
    out_channels, in_channels = weight.shape[:2]
    taps = torch.tensor([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=weight.dtype, device=weight.device)
    # One small matrix product applies the (4, 3) tap map to rows and columns: (O*I, 9) @ (9, 16).
    flat = weight.reshape(out_channels * in_channels, 9) @ torch.kron(taps, taps).t()
    return flat.reshape(out_channels, in_channels, 4, 4).transpose(0, 1)


def upsample_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(F.interpolate(x, scale_factor=2, mode="nearest"))`` for a 3x3, padding-1 ``conv``, computed as
    one transposed convolution of ``x`` (2.25x fewer multiply-adds; differences are float rounding).

    Args:
        x: ``(B, C, H, W)``.
        conv: A stride-1 ``nn.Conv2d`` with a 3x3 kernel and padding 1.

    Returns:
        ``(B, O, 2H, 2W)``.

    Examples:
        >>> import torch, torch.nn.functional as F
        >>> conv = torch.nn.Conv2d(4, 5, 3, padding=1)
        >>> x = torch.randn(2, 4, 6, 6)
        >>> y = conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        >>> torch.allclose(upsample_conv(x, conv), y, atol=1e-5)
        True
    """
    return F.conv_transpose2d(x, upsample_conv_weight(conv.weight).to(x.dtype),
                              None if conv.bias is None else conv.bias.to(x.dtype), stride=2, padding=1)


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
    quirk (official ``ResnetBlock.forward``, ``modeling/modules/maskgit_vqgan.py`` L87-88)
    that the released weights depend on;
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
        h = self.conv1(silu_(self.norm1(x)))
        h = self.conv2(silu_(self.norm2(h)))
        residual = x if self.nin_shortcut is None else self.nin_shortcut(h)  # MaskGIT quirk: shortcut of the output
        return h.add_(residual) if not torch.is_grad_enabled() else h + residual


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

    The upsampling and its convolution run as one transposed convolution
    ([`upsample_conv`][tokenkit.layers.vqgan_blocks.upsample_conv]); the parameter is the 3x3 ``upsample_conv``.

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
            x = upsample_conv(x, self.upsample_conv)
        return x
