"""TiTok's 1D latent-token ViT encoder.

"An Image is Worth 32 Tokens for Reconstruction and Generation",
https://arxiv.org/abs/2406.07550 (official ``TiTokEncoder``, ``modeling/modules/blocks.py`` L211-293).

The sequence ``[class, gh*gw patches, N latent tokens]`` goes through
``ln_pre -> backbone``; the last ``N`` positions, after ``ln_post``, are
projected to the latent width by a linear map (the official 1x1 ``conv_out``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from tokenkit.kinds import Encoder
from tokenkit.layers import init_titok_weights
from tokenkit.registry import register
from tokenkit.specs import Part
from tokenkit.validation import PatchGrid, check_positive_ints


@dataclasses.dataclass(frozen=True)
class ViT1DEncoderConfig(PatchGrid):
    """Options of the ``vit1d`` encoder."""

    image_size: int | tuple[int, int] = 256
    """Input side (square), or ``(H, W)``."""
    patch_size: int = 16
    """Patch side; both sides of ``image_size`` must be divisible by it."""
    in_channels: int = 3
    """Image channels."""
    num_tokens: int = 32
    """Number of latent tokens ``N``."""
    out_dim: int | None = None
    """Latent width ``D`` (resolved from the quantizer's ``in_dim`` when unset)."""
    legacy_reshape: bool = False
    """Reproduce the released L-32/B-64/S-128 quirk (official ``modeling/modules/blocks.py`` L286-290): the
    ``(N, W)`` token matrix is reinterpreted as ``(W, N)`` by a reshape, not a
    transpose, before the projection. Only for those checkpoints."""
    backbone: Part = Part("vit")
    """Transformer stack (kind ``backbone``); its width is the encoder width."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "patch_size", "in_channels", "num_tokens", optional=("out_dim",))
        self.check_grid()

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> ViT1DEncoderConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        patch = rng.choice([4, 8])
        return cls(image_size=patch * rng.choice([1, 2, 3]), patch_size=patch, num_tokens=rng.randint(1, 6),
                   out_dim=rng.randint(1, 6), legacy_reshape=rng.random() < 0.5,
                   backbone=Part("vit", width=16, depth=1, heads=2))


@register("encoder", "vit1d")
class ViT1DEncoder(Encoder):
    """TiTok encoder: images ``(B, C, H, W)`` -> latents ``(B, N, D)``.

    Args:
        config: [`ViT1DEncoderConfig`][tokenkit.encoders.vit1d.ViT1DEncoderConfig]
            with ``out_dim`` set.
        backbone: The built backbone (kind ``backbone``, exposing ``width``).
    """

    Config = ViT1DEncoderConfig
    grid_tables: ClassVar[Mapping[str, int]] = {"positional_embedding": 1}  # the class row, then gh*gw patches
    token_tables: ClassVar[tuple[str, ...]] = ("latent_tokens", "latent_token_positional_embedding")
    patch_weights: ClassVar[Mapping[str, tuple[int, ...]]] = {"patch_embed.weight": (2, 3)}  # (W, C, P, P)

    def __init__(self, config: ViT1DEncoderConfig, backbone: nn.Module) -> None:
        super().__init__()
        if config.out_dim is None:
            raise ValueError("vit1d encoder needs out_dim (set it, or let the composition resolve it)")
        self.config = config
        width = backbone.width
        self.width = width
        rows, cols = config.grid_shape
        scale = width**-0.5
        self.patch_embed = nn.Conv2d(config.in_channels, width, config.patch_size, stride=config.patch_size)
        self.class_embedding = nn.Parameter(scale * torch.randn(1, width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(rows * cols + 1, width))
        self.latent_tokens = nn.Parameter(scale * torch.randn(config.num_tokens, width))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(config.num_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.backbone = backbone
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Linear(width, config.out_dim)
        for module in (self.patch_embed, self.ln_pre, self.ln_post, self.proj):
            init_titok_weights(module)  # the backbone initialises itself

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Patch grid ``(gh, gw)`` of ``positional_embedding``."""
        return self.config.grid_shape

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images: ``(B, C, H, W)`` in [0, 1]. Returns: latents ``(B, N, D)``."""
        batch = images.shape[0]
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, gh*gw, W), row-major patches
        cls = self.class_embedding.to(x.dtype).expand(batch, 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        latents = (self.latent_tokens + self.latent_token_positional_embedding).to(x.dtype)
        x = torch.cat([x, latents.expand(batch, -1, -1)], dim=1)
        x = self.backbone(self.ln_pre(x))
        y = self.ln_post(x[:, -self.config.num_tokens :])
        if self.config.legacy_reshape:
            y = y.reshape(batch, self.width, self.config.num_tokens).transpose(1, 2)
        return self.proj(y)
