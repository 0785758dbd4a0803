"""TiTok's 1D latent-token ViT decoder with a ``pixel`` or ``proxy`` head.

"An Image is Worth 32 Tokens for Reconstruction and Generation",
https://arxiv.org/abs/2406.07550 (official ``TiTokDecoder``, ``modeling/modules/blocks.py`` L296-382).

With ``text_dim`` set it is TA-TiTok's text-aware decoder ("Democratizing Text-to-Image Masked Generative
Models with Compact Text-Aware One-Dimensional Tokens", https://arxiv.org/abs/2501.07730; official
``TATiTokDecoder``, ``modeling/modules/blocks.py`` L385-424): text embeddings ``(B, L, text_dim)`` are
projected to the decoder width, given their own position table and appended after the code tokens; the
read-out positions are unchanged.

The sequence ``[class, gh*gw mask queries, N code tokens (, L text tokens)]`` goes through
``ln_pre -> backbone``; the ``gh*gw`` query outputs, after ``ln_post``, feed the head:

* ``pixel`` (non-legacy models): a linear map to ``P*P*C`` values per query,
  depth-to-space to ``(B, C, H, W)`` and a 3x3 ``conv_out``.
* ``proxy`` (legacy two-stage models): ``Linear(W, 2W) -> Tanh -> Linear(2W, K)``
  giving ``(B, gh*gw, K)`` logits over the MaskGIT-VQGAN codebook, decoded to
  pixels by a ``vqgan`` pixel decoder (stage 2) or used as stage-1 targets.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import ClassVar, Literal

import torch
from einops import rearrange
from torch import nn

from tokenkit.errors import ContractError
from tokenkit.kinds import Decoder
from tokenkit.layers import init_titok_weights, linear
from tokenkit.registry import register
from tokenkit.specs import Part
from tokenkit.validation import PatchGrid, check_positive_ints


@dataclasses.dataclass(frozen=True)
class ViT1DDecoderConfig(PatchGrid):
    """Options of the ``vit1d`` decoder."""

    image_size: int | tuple[int, int] = 256
    """Output side (square), or ``(H, W)``."""
    patch_size: int = 16
    """Patch side; both sides of ``image_size`` must be divisible by it."""
    out_channels: int = 3
    """Image channels (``pixel`` head)."""
    num_tokens: int = 32
    """Number of code tokens ``N``."""
    in_dim: int | None = None
    """Code width ``D'`` (resolved from the quantizer's ``out_dim`` when unset)."""
    head: Literal["pixel", "proxy"] = "pixel"
    """``pixel``: images; ``proxy``: logits over ``proxy_codes`` per patch."""
    proxy_codes: int = 1024
    """Size of the proxy codebook (``proxy`` head only)."""
    backbone: Part = Part("vit")
    """Transformer stack (kind ``backbone``); its width is the decoder width."""
    text_dim: int | None = None
    """Width of the text guidance (TA-TiTok: 768, CLIP ViT-L/14 token outputs); ``None``: no text."""
    text_length: int = 77
    """Text tokens per prompt ``L`` (CLIP's context length), when ``text_dim`` is set."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "patch_size", "out_channels", "num_tokens", "proxy_codes", "text_length",
                            optional=("in_dim", "text_dim"))
        self.check_grid()
        if self.head not in ("pixel", "proxy"):
            raise ValueError(f"head must be 'pixel' or 'proxy', got {self.head!r}")

    @property
    def out_dim(self) -> int | None:
        """Width of the output tokens: ``proxy_codes`` for the proxy head, ``None`` for images."""
        return self.proxy_codes if self.head == "proxy" else None

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> ViT1DDecoderConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        patch = rng.choice([4, 8])
        return cls(image_size=patch * rng.choice([1, 2, 3]), patch_size=patch, num_tokens=rng.randint(1, 6),
                   in_dim=rng.randint(1, 6), head=rng.choice(["pixel", "proxy"]), proxy_codes=rng.randint(2, 16),
                   backbone=Part("vit", width=16, depth=1, heads=2), text_dim=rng.choice([None, 4]),
                   text_length=rng.randint(1, 5))


@register("decoder", "vit1d")
class ViT1DDecoder(Decoder):
    """TiTok decoder: codes ``(B, N, D')`` -> images ``(B, C, H, W)`` or logits ``(B, gh*gw, K)``.

    Without autograd on CPU in float32 the head and (if it supports it) the
    backbone run their linear maps as fused oneDNN calls
    ([`linear`][tokenkit.layers.linear.linear]; about 1.5x faster matrix
    products, outputs equal up to float rounding). ``fused_inference = False``
    restores plain ``nn.Linear`` arithmetic.

    Args:
        config: [`ViT1DDecoderConfig`][tokenkit.decoders.vit1d.ViT1DDecoderConfig]
            with ``in_dim`` set.
        backbone: The built backbone (kind ``backbone``, exposing ``width``).
    """

    Config = ViT1DDecoderConfig
    grid_tables: ClassVar[Mapping[str, int]] = {"positional_embedding": 1}  # the class row, then gh*gw queries
    token_tables: ClassVar[tuple[str, ...]] = ("latent_token_positional_embedding",)
    patch_weights: ClassVar[Mapping[str, tuple[int, ...]]] = {"ffn.0.weight": (0,)}  # pixel head: (P*P*C, W)

    def __init__(self, config: ViT1DDecoderConfig, backbone: nn.Module) -> None:
        super().__init__()
        if config.in_dim is None:
            raise ValueError("vit1d decoder needs in_dim (set it, or let the composition resolve it)")
        self.config = config
        self.output_kind = "images" if config.head == "pixel" else "logits"
        width = backbone.width
        self.width = width
        rows, cols = config.grid_shape
        scale = width**-0.5
        self.decoder_embed = nn.Linear(config.in_dim, width)
        self.class_embedding = nn.Parameter(scale * torch.randn(1, width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(rows * cols + 1, width))
        self.mask_token = nn.Parameter(scale * torch.randn(1, 1, width))
        self.latent_token_positional_embedding = nn.Parameter(scale * torch.randn(config.num_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.backbone = backbone
        self.ln_post = nn.LayerNorm(width)
        self.text_dim = config.text_dim
        if config.text_dim is not None:
            self.text_guidance_proj = nn.Linear(config.text_dim, width)
            self.text_guidance_positional_embedding = nn.Parameter(scale * torch.randn(config.text_length, width))
        patch = config.patch_size
        if config.head == "pixel":
            self.ffn = nn.Sequential(nn.Linear(width, patch * patch * config.out_channels))
            self.conv_out = nn.Conv2d(config.out_channels, config.out_channels, 3, padding=1)
        else:
            self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.Tanh(), nn.Linear(2 * width, config.proxy_codes))
            self.conv_out = nn.Identity()
        for module in (self.decoder_embed, self.ln_pre, self.ln_post, self.ffn, self.conv_out,
                       getattr(self, "text_guidance_proj", nn.Identity())):
            module.apply(init_titok_weights)  # the backbone initialises itself
        self.fused_inference = True

    def _check_text(self, text: torch.Tensor | None, batch: int) -> None:
        if self.text_dim is None:
            if text is not None:
                raise ContractError("this vit1d decoder takes no text (built without text_dim); drop text=, or use a "
                                    "text-aware decoder (text_dim=...) such as TA-TiTok's")
            return
        expected = (batch, self.config.text_length, self.text_dim)
        if text is None:
            raise ContractError(f"this vit1d decoder is text-aware (text_dim={self.text_dim}): pass text guidance "
                                f"of shape {expected} (TA-TiTok: CLIP token embeddings)")
        if not isinstance(text, torch.Tensor) or not text.is_floating_point() or tuple(text.shape) != expected:
            got = f"{tuple(text.shape)} {text.dtype}" if isinstance(text, torch.Tensor) else type(text).__name__
            raise ContractError(f"text guidance must be a float tensor of shape {expected}, got {got}")

    @property
    def grid_shape(self) -> tuple[int, int]:
        """Patch grid ``(gh, gw)`` of ``positional_embedding``."""
        return self.config.grid_shape

    @property
    def fused_inference(self) -> bool:
        """Fused oneDNN linear maps in CPU float32 inference, for the head and the backbone (default on)."""
        return self._fused_inference

    @fused_inference.setter
    def fused_inference(self, value: bool) -> None:
        self._fused_inference = bool(value)
        if self.backbone.has_fused_inference:
            self.backbone.fused_inference = bool(value)

    def forward(self, codes: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """Args: codes: ``(B, N, D')``, or the first ``k < N`` tokens ``(B, k, D')`` (the decoder then reads the
        shorter sequence, as a ``tail-drop`` bottleneck with ``fill="truncate"`` feeds it).
        text: ``(B, L, text_dim)`` text guidance, required by (and only by) a decoder built with ``text_dim``.

        Returns:
            ``(B, C, H, W)`` images (``pixel`` head) or ``(B, gh*gw, K)`` logits (``proxy`` head), row-major
            over the patch grid.

        Raises:
            ContractError: Text missing for a text-aware decoder, given to one that takes none, or mis-shaped.
        """
        batch = codes.shape[0]
        self._check_text(text, batch)
        rows, cols = self.config.grid_shape
        x = self.decoder_embed(codes)
        x = x + self.latent_token_positional_embedding[: x.shape[1]].to(x.dtype)
        queries = torch.cat(
            [self.class_embedding.to(x.dtype).expand(batch, 1, -1),
             self.mask_token.to(x.dtype).expand(batch, rows * cols, -1)], dim=1)
        queries = queries + self.positional_embedding.to(x.dtype)
        parts = [queries, x]
        if text is not None:
            text = self.text_guidance_proj(text.to(x.dtype))
            parts.append(text + self.text_guidance_positional_embedding.to(x.dtype))
        x = self.backbone(self.ln_pre(torch.cat(parts, dim=1)))
        x = self.ln_post(x[:, 1 : 1 + rows * cols])
        fused = self._fused_inference
        if self.config.head == "proxy":  # Linear -> Tanh -> Linear
            return linear(linear(x, self.ffn[0], activation="tanh", fused=fused), self.ffn[2], fused=fused)
        x = linear(x, self.ffn[0], fused=fused)
        p = self.config.patch_size
        x = rearrange(x, "b (h w) (p1 p2 c) -> b c (h p1) (w p2)", h=rows, p1=p, p2=p)
        return self.conv_out(x)
