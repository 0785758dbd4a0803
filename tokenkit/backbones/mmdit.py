"""MM-DiT stack: joint attention over image tokens and a text sequence, adaLN from a pooled condition.

"Scaling Rectified Flow Transformers for High-Resolution Image Synthesis" (Stable Diffusion 3),
https://arxiv.org/abs/2403.03206, Section 4 (MM-DiT). Built from diffusers' ``JointTransformerBlock`` and
``AdaLayerNormContinuous``, as the official MaskGen does (``MaskGen_VQ`` / ``MaskGen_KL``,
``modeling/maskgen.py`` L113-121 and L445-450 of bytedance/1d-tokenizer): the last block updates only the
image stream (``context_pre_only``), then a continuous adaptive LayerNorm (no affine, eps 1e-6) driven by
the pooled condition.

Needs the optional extra ``pip install "tokenkit[text]"`` (diffusers).
"""

from __future__ import annotations

import dataclasses
import random

import torch
from torch import nn

from tokenkit.errors import ConfigError
from tokenkit.kinds import Backbone
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


def import_diffusers_blocks() -> tuple[type, type]:
    """``(JointTransformerBlock, AdaLayerNormContinuous)`` from diffusers, or a clear error naming the extra."""
    try:
        from diffusers.models.attention import JointTransformerBlock
        from diffusers.models.normalization import AdaLayerNormContinuous
    except ImportError as err:
        raise ConfigError("the 'mmdit' backbone needs the diffusers package: pip install \"tokenkit[text]\"") from err
    return JointTransformerBlock, AdaLayerNormContinuous


@dataclasses.dataclass(frozen=True)
class MMDiTConfig:
    """Options of the ``mmdit`` backbone."""

    width: int = 1024
    """Token width ``W`` of both streams."""
    depth: int = 16
    """Number of joint blocks."""
    heads: int = 16
    """Attention heads; must divide ``width``."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "width", "depth", "heads")
        if self.width % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide width ({self.width})")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> MMDiTConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2])
        return cls(width=8 * heads, depth=rng.randint(1, 2), heads=heads)


@register("backbone", "mmdit")
class MMDiT(Backbone):
    """Joint text-image transformer: ``x (B, N, W)``, ``context (B, L, W)``, ``pooled (B, W)`` -> ``(B, N, W)``.

    Args:
        config: [`MMDiTConfig`][tokenkit.backbones.mmdit.MMDiTConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> stack = tk.build_part("backbone", tk.Part("mmdit", width=16, depth=2, heads=2))
        >>> stack(torch.randn(2, 5, 16), torch.randn(2, 7, 16), torch.randn(2, 16)).shape
        torch.Size([2, 5, 16])
    """

    Config = MMDiTConfig
    text_conditioned = True

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        joint_block, ada_norm = import_diffusers_blocks()
        self.config = config
        self.width = config.width
        head_dim = config.width // config.heads
        self.blocks = nn.ModuleList(
            joint_block(dim=config.width, num_attention_heads=config.heads, attention_head_dim=head_dim,
                        context_pre_only=i == config.depth - 1)
            for i in range(config.depth))
        self.norm = ada_norm(config.width, config.width, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, context: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, N, W)`` image tokens; context: ``(B, L, W)`` text tokens; pooled: ``(B, W)``.

        Returns:
            ``(B, N, W)``: the image stream after the blocks and the final adaptive norm.
        """
        for block in self.blocks:
            context, x = block(x, context, pooled)
        return self.norm(x, pooled)
