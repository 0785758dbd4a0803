"""DiT-style transformer stack: adaLN-Zero conditioning per position, QK-norm, optional causal attention.

"Scalable Diffusion Models with Transformers" (DiT), https://arxiv.org/abs/2212.09748, Section 3.2
(adaLN-Zero); used causally with a KV cache by RAR, "Randomized Autoregressive Visual Generation",
https://arxiv.org/abs/2411.00776. Official RAR code: ``Block`` and ``Attention`` in ``modeling/rar.py``
(L56-183 of bytedance/1d-tokenizer).

Each block maps a condition ``c`` to six vectors (shift, scale, gate for attention and for the MLP)
and computes ``x + gate_a * attn(modulate(norm1(x)))`` then ``x + gate_m * mlp(modulate(norm2(x)))``
with ``modulate(h) = h * (1 + scale) + shift``. The condition has one vector per position (RAR adds a
per-step embedding to the class embedding) or one for all positions. The modulation layers start at
zero, so every block starts as the identity.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from tokenkit.kinds import Backbone
from tokenkit.layers import Mlp, init_titok_weights
from tokenkit.layers.attention import attention
from tokenkit.layers.kv_cache import KVCache
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints


@dataclasses.dataclass(frozen=True)
class DiTConfig:
    """Options of the ``dit`` backbone."""

    width: int = 768
    """Token width ``W``."""
    depth: int = 24
    """Number of blocks."""
    heads: int = 16
    """Attention heads; must divide ``width``."""
    mlp_dim: int = 3072
    """MLP hidden width."""
    causal: bool = False
    """Each position attends only to itself and earlier ones (autoregressive generators)."""
    qk_norm: bool = True
    """LayerNorm over each head's queries and keys before attention."""
    qkv_bias: bool = True
    """Bias on the packed ``qkv`` projection."""
    norm_eps: float = 1e-6
    """LayerNorm epsilon."""
    dropout: float = 0.0
    """Dropout after the attention projection and in the MLP (training only)."""
    attn_dropout: float = 0.0
    """Dropout of the attention weights (training only)."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "width", "depth", "heads", "mlp_dim")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        for name in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> DiTConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2, 4])
        width = heads * rng.choice([4, 8])
        return cls(width=width, depth=rng.randint(1, 2), heads=heads, mlp_dim=2 * width, causal=rng.random() < 0.5,
                   qk_norm=rng.random() < 0.7)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` (DiT's adaLN)."""
    return x * (1 + scale) + shift


class DiTAttention(nn.Module):
    """Multi-head self-attention with QK-norm, causal masking and an optional KV cache.

    Args:
        config: [`DiTConfig`][tokenkit.backbones.dit.DiTConfig].
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.heads, self.causal, self.attn_dropout = config.heads, config.causal, config.attn_dropout
        head_dim = config.width // config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=config.qkv_bias)
        self.q_norm = nn.LayerNorm(head_dim, eps=config.norm_eps) if config.qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(head_dim, eps=config.norm_eps) if config.qk_norm else nn.Identity()
        self.proj = nn.Linear(config.width, config.width)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """Attention of ``x`` ``(B, n, W)``: ``n`` new positions after the ``cache.length`` cached ones.

        Returns:
            ``(B, n, W)``.
        """
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.heads)
        q, k = self.q_norm(q), self.k_norm(k)
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(layer, k, v)
        n = q.shape[2]
        mask, is_causal = None, False
        if self.causal and n > 1:
            if past == 0:
                is_causal = True
            else:  # new position i sees the cache and the new positions up to i
                mask = torch.ones(n, past + n, dtype=torch.bool, device=x.device).tril(diagonal=past)
        out = attention(q, k, v, self.attn_dropout if self.training else 0.0, attn_mask=mask, is_causal=is_causal)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class DiTBlock(nn.Module):
    """One adaLN-Zero block (see the module docstring).

    Args:
        config: [`DiTConfig`][tokenkit.backbones.dit.DiTConfig].
    """

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.attn = DiTAttention(config)
        self.norm2 = nn.LayerNorm(config.width, eps=config.norm_eps)
        self.mlp = Mlp(config.width, config.mlp_dim)
        self.modulation = nn.Linear(config.width, 6 * config.width)
        self.drop = nn.Dropout(config.dropout)

    def modulate(self, condition: torch.Tensor) -> torch.Tensor:
        """The block's six modulation vectors of ``condition`` ``(B, n, W)``, packed: ``(B, n, 6 W)``."""
        return self.modulation(F.silu(condition))

    def forward(self, x: torch.Tensor, condition: torch.Tensor, cache: KVCache | None = None,
                layer: int = 0, modulation: torch.Tensor | None = None) -> torch.Tensor:
        """Args: x: ``(B, n, W)``; condition: ``(B, n, W)`` or ``(B, 1, W)``; modulation: ``modulate(condition)``
        when already computed (``condition`` is then not read). Returns: ``(B, n, W)``."""
        if modulation is None:
            modulation = self.modulate(condition)
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = modulation.chunk(6, dim=-1)
        x = x + gate_a * self.drop(self.attn(modulate(self.norm1(x), shift_a, scale_a), cache, layer))
        hidden = self.drop(self.mlp.act(self.mlp.fc1(modulate(self.norm2(x), shift_m, scale_m))))
        return x + gate_m * self.drop(self.mlp.fc2(hidden))


@register("backbone", "dit")
class DiTBackbone(Backbone):
    """Stack of adaLN-Zero blocks: tokens ``(B, L, W)`` + condition -> tokens ``(B, L, W)``.

    Args:
        config: [`DiTConfig`][tokenkit.backbones.dit.DiTConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> net = tk.build_part("backbone", tk.Part("dit", width=16, depth=2, heads=2, mlp_dim=32, causal=True))
        >>> tokens, condition = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
        >>> net(tokens, condition).shape
        torch.Size([2, 5, 16])

        Causal decoding with a KV cache gives the outputs of the whole sequence, position by position:

        >>> from tokenkit.layers.kv_cache import KVCache
        >>> _ = [torch.nn.init.normal_(block.modulation.weight) for block in net.blocks]  # not the identity
        >>> full = net(tokens, condition)
        >>> cache = net.new_cache(batch=2, max_length=5)
        >>> steps = [net(tokens[:, :3], condition[:, :3], cache=cache)]
        >>> steps += [net(tokens[:, i : i + 1], condition[:, i : i + 1], cache=cache) for i in (3, 4)]
        >>> torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
        True
    """

    Config = DiTConfig

    def __init__(self, config: DiTConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.apply(init_titok_weights)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.modulation.weight)
            nn.init.zeros_(block.modulation.bias)

    def new_cache(self, batch: int, max_length: int, *, dtype: torch.dtype | None = None,
                  device: torch.device | str | None = None) -> KVCache:
        """An empty [`KVCache`][tokenkit.layers.kv_cache.KVCache] for this stack (a causal one).

        Args:
            batch: Batch size.
            max_length: Most positions it will hold.
            dtype: Of the keys and values (default: the parameters').
            device: Default: the parameters'.
        """
        weight = self.blocks[0].attn.qkv.weight
        return KVCache(layers=len(self.blocks), batch=batch, heads=self.config.heads,
                       head_dim=self.width // self.config.heads, max_length=max_length,
                       dtype=dtype or weight.dtype, device=device or weight.device)

    def modulations(self, condition: torch.Tensor) -> list[torch.Tensor]:
        """Every block's modulation of ``condition`` ``(B, n, W)``: ``depth`` tensors ``(B, n, 6 W)``.

        They depend on the condition only, so a sampler whose conditions are known in advance (RAR: class
        plus position) computes them once for all positions and passes slices to ``forward``.
        """
        return [block.modulate(condition) for block in self.blocks]

    def forward(self, tokens: torch.Tensor, condition: torch.Tensor | None = None, *,
                cache: KVCache | None = None, modulations: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Run the stack.

        Args:
            tokens: ``(B, n, W)``: the whole sequence, or with ``cache`` the ``n`` positions after the cached ones.
            condition: ``(B, n, W)`` (one vector per position) or ``(B, 1, W)``; ``None``: zeros.
            cache: Keys and values of earlier positions (read, then extended by these ``n``).
            modulations: [`modulations`][tokenkit.backbones.dit.DiTBackbone.modulations] of the condition of
                these ``n`` positions, when already computed (``condition`` is then not read).

        Returns:
            ``(B, n, W)``.
        """
        if condition is None and modulations is None:
            condition = tokens.new_zeros(tokens.shape[0], 1, tokens.shape[2])
        for layer, block in enumerate(self.blocks):
            tokens = block(tokens, condition, cache, layer, None if modulations is None else modulations[layer])
        if cache is not None:
            cache.advance(tokens.shape[1])
        return tokens
