"""Class-conditional masked-token generator over 1D tokens (TiTok's MaskGIT).

Official code: ``ImageBert`` and ``UViTBert`` in ``modeling/maskgit.py`` (L40-282).

"MaskGIT: Masked Generative Image Transformer", https://arxiv.org/abs/2202.04200.

Token space (``K`` codebook size, ``C`` classes): ids ``0..K-1`` are image
tokens, ``K`` is the mask, ``K+1+c`` is class ``c`` and ``K+1+C`` the dropped
("unconditional") class. The input sequence is ``[class, N tokens]``; the
backbone's outputs at the ``N`` token positions go through ``lm_head`` to
logits over the ``K`` image ids.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tokenkit.contracts import check_generator_inputs
from tokenkit.generators.common import class_token_ids, run_sampler
from tokenkit.generators.sampling import SamplingConfig, generate, sampling_config
from tokenkit.kinds import Generator
from tokenkit.registry import register
from tokenkit.specs import Part
from tokenkit.validation import check_positive_ints
from tokenkit.weights.model_files import SaveMixin


@dataclasses.dataclass(frozen=True)
class MaskGITConfig:
    """Options of the ``maskgit`` generator."""

    codebook_size: int = 4096
    """Image-token vocabulary ``K`` (the tokenizer's codebook size)."""
    num_tokens: int = 32
    """Tokens per image ``N``."""
    num_classes: int = 1000
    """Number of class labels ``C``."""
    label_dropout: float = 0.1
    """Probability of dropping the class in training (for classifier-free guidance)."""
    output_norm: bool = False
    """Final LayerNorm before ``lm_head`` (for pre-LN backbones such as ``vit``;
    ``bert`` is post-LN and ``uvit`` normalises itself)."""
    backbone: Part = Part("bert")
    """Transformer stack (kind ``backbone``)."""
    sampling: SamplingConfig = SamplingConfig()
    """Default sampling settings of [`generate`][tokenkit.generators.maskgit.MaskGIT.generate]."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", "num_tokens", "num_classes")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ValueError(f"label_dropout must be in [0, 1], got {self.label_dropout}")
        object.__setattr__(self, "sampling", sampling_config(self.sampling))

    @property
    def vocab_size(self) -> int:
        """Rows of the token embedding: ``K + 1 + C + 1``."""
        return self.codebook_size + self.num_classes + 2

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> MaskGITConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        backbone = rng.choice([Part("bert", width=16, depth=1, heads=2, mlp_dim=32),
                               Part("uvit", width=16, depth=2, heads=2), Part("vit", width=16, depth=1, heads=2)])
        return cls(codebook_size=rng.randint(2, 32), num_tokens=rng.randint(1, 8), num_classes=rng.randint(1, 10),
                   output_norm=backbone.name == "vit", backbone=backbone,
                   sampling=SamplingConfig(steps=rng.randint(1, 4)))


@register("generator", "maskgit")
class MaskGIT(SaveMixin, Generator):
    """Masked-token generator: ``indices (B, N)`` + ``labels (B,)`` -> ``logits (B, N, K)``.

    Args:
        config: [`MaskGITConfig`][tokenkit.generators.maskgit.MaskGITConfig].
        backbone: The built backbone (kind ``backbone``, exposing ``width``).

    Examples:
        >>> import torch, tokenkit as tk
        >>> gen = tk.build("maskgit-tiny")
        >>> ids = gen.generate(torch.tensor([1, 2]), steps=4, generator=torch.Generator().manual_seed(0))
        >>> ids.shape, bool((ids < gen.codebook_size).all())
        (torch.Size([2, 8]), True)
    """

    Config = MaskGITConfig

    def __init__(self, config: MaskGITConfig, backbone: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.codebook_size = config.codebook_size
        self.num_tokens = config.num_tokens
        self.num_classes = config.num_classes
        self.mask_id = config.codebook_size
        self.drop_label_id = config.codebook_size + 1 + config.num_classes
        width = backbone.width
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.position_embedding = nn.Parameter(torch.zeros(config.num_tokens + 1, width))
        self.backbone = backbone
        self.norm = nn.LayerNorm(width) if config.output_norm else nn.Identity()
        self.lm_head = nn.Linear(width, config.codebook_size)
        for tensor in (self.token_embedding.weight, self.position_embedding, self.lm_head.weight):
            nn.init.trunc_normal_(tensor, std=0.02)
        nn.init.zeros_(self.lm_head.bias)

    def _check(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        check_generator_inputs(indices, labels, num_tokens=self.num_tokens, mask_id=self.mask_id,
                               num_classes=self.num_classes)

    def forward(self, indices: torch.Tensor, labels: torch.Tensor, drop_labels: torch.Tensor | None = None,
                *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits over the image tokens.

        Args:
            indices: ``(B, N)`` ids in ``[0, K]`` (``K`` = mask).
            labels: ``(B,)`` class ids in ``[0, C)``.
            drop_labels: ``(B,)`` bool, True where the class is replaced by the
                unconditional id. ``None``: drawn with ``label_dropout`` in training,
                none dropped in eval.
            generator: Random generator for the label dropout.

        Returns:
            ``(B, N, K)`` logits.

        Raises:
            ContractError: Bad shapes, dtypes or ids out of range.
        """
        self._check(indices, labels)
        condition = class_token_ids(labels, drop_labels, codebook_size=self.codebook_size, num_classes=self.num_classes,
                                    label_dropout=self.config.label_dropout, training=self.training, generator=generator)
        tokens = torch.cat([condition[:, None], indices], dim=1)
        x = self.token_embedding(tokens) + self.position_embedding.to(self.token_embedding.weight.dtype)
        x = self.norm(self.backbone(x))
        return self.lm_head(x[:, 1:])

    def generate(self, labels: torch.Tensor | list[int], *, generator: torch.Generator | None = None,
                 noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
                 callback: Callable[[int, torch.Tensor], None] | None = None, **sampling: Any) -> torch.Tensor:
        """Sample token ids for class ``labels`` by iterative decoding.

        Args:
            labels: ``(B,)`` class ids.
            generator: Random generator (fixes the samples).
            noise: Replaces the uniform draws (see [`generate`][tokenkit.generators.sampling.generate]).
            callback: ``callback(step, ids)`` after each step.
            **sampling: Overrides of the defaults in ``config.sampling`` (``steps``,
                ``guidance``, ``guidance_decay``, ``guidance_pow``, ``temperature``,
                ``softmax_annealing``, ``schedule``, ``compat``).

        Returns:
            ``(B, N)`` int64 ids in ``[0, K)``.
        """
        return run_sampler(self, generate, labels, sampling, generator=generator, noise=noise, callback=callback)
