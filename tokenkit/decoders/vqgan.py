"""MaskGIT-VQGAN convolutional decoder, optionally with soft pixel decoding.

Official: ``Decoder``, ``modeling/modules/maskgit_vqgan.py`` L197-245.

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200.

Codes ``(B, L, D)`` with ``L = s*s`` are laid out row-major on an ``s x s``
grid (or the ``rows x cols`` grid passed as ``grid=``) and upsampled by
``2**(len(channel_mult) - 1)`` (16 for the released f16 model) to images. This part is the
decoder of the ``maskgit-vqgan`` tokenizer and the stage-2 pixel decoder of the legacy TiTok models.

With ``codebook_size`` set the decoder owns a codebook and reads *logits*
over it: it decodes the softmax-probability-weighted sum of codebook rows
(TiTok's soft pixel decoding, official ``TiTok.decode``, ``modeling/titok.py`` L183-190). The
output is not clamped (``Tokenizer.detokenize`` clamps to [0, 1]).

Speed: the upsampling convolutions run as transposed convolutions, SiLU and
residual adds run in place without autograd (see
[`tokenkit.layers.vqgan_blocks`][tokenkit.layers.vqgan_blocks]), and on CPU the
activations are channels-last (oneDNN's native layout; the ``(B, L, D)`` codes
already are, so no copy is made). Outputs equal the official decoder's up to
float rounding: within 4e-5 on [0, 1] images, because PyTorch's channels-last CPU
GroupNorm and convolution kernels round more than the NCHW ones (the official
code itself is 5e-5 from a float64 reference at batch 4). ``channels_last = False``
runs NCHW: about 1e-5 from float64, about 15 % slower (``docs/guides/performance.md``).
"""

from __future__ import annotations

import dataclasses
import math
import random

import torch
from einops import rearrange
from torch import nn

from tokenkit.contracts import check_tokens
from tokenkit.errors import ContractError
from tokenkit.kinds import Decoder
from tokenkit.layers.vqgan_blocks import ResnetBlock, UpLevel, check_conv_widths, conv, group_norm, silu_
from tokenkit.registry import register


@dataclasses.dataclass(frozen=True)
class VQGANDecoderConfig:
    """Options of the ``vqgan`` decoder (defaults: the released MaskGIT-VQGAN f16 decoder)."""

    hidden_channels: int = 128
    """Base width; level ``i`` has ``hidden_channels * channel_mult[i]`` channels."""
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    """Width multipliers per level, finest first; ``len - 1`` x2 upsamplings."""
    num_res_blocks: int = 2
    """ResnetBlocks per level (and in the middle)."""
    z_channels: int = 256
    """Width of the code vectors fed to ``conv_in``."""
    out_channels: int = 3
    """Image channels."""
    codebook_size: int | None = None
    """If set, the input is logits over an owned ``(codebook_size, z_channels)``
    codebook, decoded softly (TiTok stage 2); ``None``: the input is codes."""
    norm_groups: int = 32
    """GroupNorm groups; must divide every level width."""

    def __post_init__(self) -> None:
        optional = {} if self.codebook_size is None else {"codebook_size": self.codebook_size}
        mult = check_conv_widths(self.hidden_channels, self.channel_mult, self.norm_groups,
                                 num_res_blocks=self.num_res_blocks, z_channels=self.z_channels,
                                 out_channels=self.out_channels, **optional)
        object.__setattr__(self, "channel_mult", mult)

    @property
    def in_dim(self) -> int:
        """Input width: ``codebook_size`` (logits) if set, else ``z_channels`` (codes)."""
        return self.z_channels if self.codebook_size is None else self.codebook_size

    @property
    def upsample_factor(self) -> int:
        """Output side per input grid cell: ``2**(len(channel_mult) - 1)``."""
        return 2 ** (len(self.channel_mult) - 1)

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> VQGANDecoderConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        mult = tuple(rng.choice([1, 2]) for _ in range(rng.randint(1, 3)))
        return cls(hidden_channels=8 * rng.randint(1, 2), channel_mult=mult, num_res_blocks=rng.randint(1, 2),
                   z_channels=rng.randint(1, 8), out_channels=rng.choice([1, 3]),
                   codebook_size=rng.choice([None, rng.randint(2, 16)]), norm_groups=rng.choice([4, 8]))


@register("decoder", "vqgan")
class VQGANDecoder(Decoder):
    """MaskGIT-VQGAN decoder: codes (or codebook logits) ``(B, h*w, D)`` -> images ``(B, C, h*f, w*f)``.

    Layout: ``conv_in`` (3x3) -> ``mid`` (ResnetBlocks) -> up levels run from
    coarsest to finest (``up.{n-1}`` ... ``up.0``, each ``block.{j}`` then, except
    ``up.0``, nearest x2 + ``upsample_conv``) -> ``norm_out`` -> SiLU -> ``conv_out``.

    Args:
        config: [`VQGANDecoderConfig`][tokenkit.decoders.vqgan.VQGANDecoderConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> dec = tk.build_part("decoder", tk.Part("vqgan", hidden_channels=32, channel_mult=(1, 2),
        ...                                        num_res_blocks=1, z_channels=8, norm_groups=8))
        >>> dec(torch.randn(2, 16, 8)).shape
        torch.Size([2, 3, 8, 8])
    """

    Config = VQGANDecoderConfig

    def __init__(self, config: VQGANDecoderConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.hidden_channels * m for m in config.channel_mult]
        groups, blocks = config.norm_groups, config.num_res_blocks
        if config.codebook_size is not None:
            self.codebook = nn.Embedding(config.codebook_size, config.z_channels)
            nn.init.uniform_(self.codebook.weight, -1.0 / config.codebook_size, 1.0 / config.codebook_size)
        self.conv_in = conv(config.z_channels, widths[-1], 3)
        self.mid = nn.ModuleList(ResnetBlock(widths[-1], widths[-1], groups) for _ in range(blocks))
        # Stored finest first (official key order ``up.0`` .. ``up.{n-1}``), executed in reverse.
        self.up = nn.ModuleList(
            UpLevel(widths[min(i + 1, len(widths) - 1)], widths[i], blocks, upsample=i != 0, norm_groups=groups)
            for i in range(len(widths)))
        self.norm_out = group_norm(widths[0], groups)
        self.conv_out = conv(widths[0], config.out_channels, 3)

    channels_last: bool | None = None
    """Layout of the activations: ``None`` (default) channels-last on CPU and, elsewhere, channels-last
    only if the convolution weights are (``.to(memory_format=torch.channels_last)``); ``True`` / ``False``
    force channels-last / NCHW."""

    def memory_format(self, device: torch.device | None = None) -> torch.memory_format:
        """The layout the activations run in on ``device`` (default: the weights' device); see ``channels_last``."""
        weight = self.conv_in.weight
        if self.channels_last is None:
            cpu = (device or weight.device).type == "cpu"
            weights_cl = weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
            use = cpu or weights_cl
        else:
            use = self.channels_last
        return torch.channels_last if use else torch.contiguous_format

    def soft_codes(self, logits: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Probability-weighted codebook rows: ``(B, L, K)`` logits -> ``(B, L, z_channels)`` codes.

        Raises:
            ContractError: If this decoder has no codebook (``codebook_size`` unset).
        """
        rows, _ = self._grid(logits, grid)
        return rearrange(self._soft_grid(logits, rows), "b c h w -> b (h w) c")

    def _soft_grid(self, logits: torch.Tensor, rows: int) -> torch.Tensor:
        """Soft codes laid out as the ``(B, z, rows, cols)`` grid (a channels-last view of ``(B, L, z)``).

        The official ``einsum('nchw,cd->ndhw', softmax over codes, codebook)``, computed
        as a softmax over the contiguous last axis and one matrix product (equal up to rounding).
        """
        if self.config.codebook_size is None:
            raise ContractError("soft_codes needs a decoder built with codebook_size")
        codes = torch.matmul(logits.softmax(dim=-1), self.codebook.weight.to(logits.dtype))
        return rearrange(codes, "b (h w) c -> b c h w", h=rows)

    def _grid(self, codes: torch.Tensor, grid: tuple[int, int] | None) -> tuple[int, int]:
        codes = check_tokens(codes, "codes", dim=self.config.in_dim)
        length = codes.shape[1]
        if grid is not None:
            rows, cols = grid
            if rows * cols != length or rows < 1:
                raise ContractError(f"codes must form a {rows}x{cols} grid (B, {rows * cols}, {self.config.in_dim}); "
                                    f"got L = {length} tokens")
            return rows, cols
        side = math.isqrt(length)
        if side * side != length or side == 0:
            raise ContractError(f"codes must form a square grid (B, s*s, {self.config.in_dim}) unless grid=(rows, "
                                f"cols) is given; got L = {length} tokens, not a positive perfect square")
        return side, side

    def forward(self, codes: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Decode a row-major grid of codes.

        Args:
            codes: ``(B, L, in_dim)``: code vectors (``z_channels`` wide), or logits over the
                codebook when ``codebook_size`` is set.
            grid: ``(rows, cols)`` of the code grid, ``L = rows * cols``; ``None``: a square
                ``s x s`` grid (``L = s*s``).

        Returns:
            ``(B, out_channels, rows*f, cols*f)`` images (not clamped), ``f = upsample_factor``.

        Raises:
            ContractError: Wrong rank or width, or ``L`` not ``rows * cols`` (not a perfect square without ``grid``).

        Examples:
            >>> import torch, tokenkit as tk
            >>> dec = tk.build_part("decoder", tk.Part("vqgan", hidden_channels=8, channel_mult=(1, 1),
            ...                                        num_res_blocks=1, z_channels=4, norm_groups=4))
            >>> dec(torch.randn(1, 6, 4), grid=(2, 3)).shape  # a 2x3 code grid, upsampled x2
            torch.Size([1, 3, 4, 6])
        """
        rows, _ = self._grid(codes, grid)
        if self.config.codebook_size is not None:
            x = self._soft_grid(codes, rows)
        else:
            x = rearrange(codes, "b (h w) c -> b c h w", h=rows)
        # x is a channels-last view of the (B, L, D) codes; every convolution keeps the layout chosen here.
        x = x.contiguous(memory_format=self.memory_format(x.device))
        x = self.conv_in(x)
        for block in self.mid:
            x = block(x)
        for level in reversed(self.up):
            x = level(x)
        return self.conv_out(silu_(self.norm_out(x))).contiguous()
