"""Post-LN BERT encoder stack (the transformer of TiTok's ImageBert generator).

"BERT: Pre-training of Deep Bidirectional Transformers", https://arxiv.org/abs/1810.04805;
layout of Hugging Face ``BertModel`` as the official ``ImageBert`` builds it
(``modeling/maskgit.py`` L40-107): the embedding LayerNorm
(eps 1e-12) is applied to the input after adding the token-type row 0, then
each layer is ``x = LN(x + Attn(x)); x = LN(x + MLP(x))`` with exact GELU.
There is no final LayerNorm. Query/key/value are packed into one ``qkv``
projection (the official checkpoints' separate ``query``/``key``/``value``
weights are concatenated by the converter).
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokenkit.kinds import Backbone
from tokenkit.layers.attention import attention
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Options of the ``bert`` backbone."""

    width: int = 768
    """Hidden size ``W``."""
    depth: int = 24
    """Number of layers."""
    heads: int = 16
    """Attention heads; must divide ``width``."""
    mlp_dim: int = 3072
    """Intermediate (MLP hidden) size."""
    dropout: float = 0.1
    """Hidden dropout (training only)."""
    attn_dropout: float = 0.1
    """Attention-probability dropout (training only)."""
    norm_eps: float = 1e-12
    """LayerNorm epsilon (BERT's 1e-12)."""
    type_vocab_size: int = 2
    """Rows of the token-type table; row 0 is added to every position."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "width", "depth", "heads", "mlp_dim", "type_vocab_size")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> BertConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2, 4])
        width = heads * rng.choice([4, 8])
        return cls(width=width, depth=rng.randint(1, 2), heads=heads, mlp_dim=2 * width)


class BertLayer(nn.Module):
    """One post-LN layer: ``x = norm1(x + attn(x)); x = norm2(x + mlp(x))``."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.attn_dropout = config.attn_dropout
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.proj = nn.Linear(config.width, config.width)
        self.norm1 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.fc1 = nn.Linear(config.width, config.mlp_dim)
        self.fc2 = nn.Linear(config.mlp_dim, config.width)
        self.norm2 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        a = attention(q, k, v, dropout_p=self.attn_dropout if self.training else 0.0)
        x = self.norm1(x + self.dropout(self.proj(rearrange(a, "b h l d -> b l (h d)"))))
        return self.norm2(x + self.dropout(self.fc2(F.gelu(self.fc1(x)))))


@register("backbone", "bert")
class BertBackbone(Backbone):
    """BERT encoder: tokens ``(B, L, W)`` (word + position embeddings) -> hidden states ``(B, L, W)``.

    Args:
        config: [`BertConfig`][tokenkit.backbones.bert.BertConfig].
    """

    Config = BertConfig

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        self.token_type = nn.Parameter(torch.zeros(config.type_vocab_size, config.width))
        self.embed_norm = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.embed_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(BertLayer(config) for _ in range(config.depth))
        self.apply(_init_bert)
        nn.init.normal_(self.token_type, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Args: tokens: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        x = self.embed_dropout(self.embed_norm(tokens + self.token_type[0].to(tokens.dtype)))
        for block in self.blocks:
            x = block(x)
        return x


def _init_bert(module: nn.Module) -> None:
    """Hugging Face BERT init: normal(0, 0.02) weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
