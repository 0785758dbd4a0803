"""Class-conditional autoregressive generator with RAR's target-aware positions and random orders.

"Randomized Autoregressive Visual Generation" (RAR), https://arxiv.org/abs/2411.00776; official code:
``RAR`` in ``modeling/rar.py`` (L186-456 of bytedance/1d-tokenizer).

Token space (``K`` codebook size, ``C`` classes), as MaskGIT's: ids ``0..K-1`` are image tokens, ``K``
is reserved (a mask id, unused here), ``K+1+c`` is class ``c`` and ``K+1+C`` the dropped class. The
sequence is ``[start, class, t_1, ..., t_{N-1}]``: the output at the class predicts the first token,
the output at ``t_i`` the next one. Besides its own position embedding, every input carries the
*target-aware* position embedding of the token it predicts (RAR Section 3.2), so that the model knows
which position comes next when training permutes the order. Each position is conditioned (adaLN, a
[`dit`][tokenkit.backbones.dit.DiTBackbone] backbone) on the class embedding plus an embedding of its
index. Training draws a random order with probability ``random_ratio`` (annealed from 1 to 0 by the
trainer); sampling is in raster order.

Official quirks kept because the weights depend on them (only the first ``N + 2`` rows are used):
the position tables have ``N + 1024`` rows and the step table ``N + 100``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tokenkit.contracts import check_generator_inputs
from tokenkit.errors import ContractError
from tokenkit.generators.ar_sampling import ARSamplingConfig, ar_sampling_config, generate_autoregressive
from tokenkit.generators.common import class_token_ids, run_sampler
from tokenkit.kinds import Generator
from tokenkit.layers.kv_cache import KVCache
from tokenkit.registry import register
from tokenkit.specs import Part
from tokenkit.validation import check_positive_ints
from tokenkit.weights.model_files import SaveMixin


@dataclasses.dataclass(frozen=True)
class ARConfig:
    """Options of the ``ar`` generator."""

    codebook_size: int = 1024
    """Image-token vocabulary ``K`` (the tokenizer's codebook size)."""
    num_tokens: int = 256
    """Tokens per image ``N``."""
    num_classes: int = 1000
    """Number of class labels ``C``."""
    label_dropout: float = 0.1
    """Probability of dropping the class in training (for classifier-free guidance)."""
    position_rows: int = 1024
    """Rows of the position tables beyond ``N`` (official RAR: 1024; only 2 are used)."""
    step_rows: int = 100
    """Rows of the per-position condition table beyond ``N`` (official RAR: 100; only 2 are used)."""
    backbone: Part = Part("dit", causal=True)
    """Causal transformer stack with adaLN conditioning (kind ``backbone``, e.g. ``dit``)."""
    sampling: ARSamplingConfig = ARSamplingConfig()
    """Default sampling settings of [`generate`][tokenkit.generators.ar.ARGenerator.generate]."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", "num_tokens", "num_classes")
        if self.position_rows < 2 or self.step_rows < 2:
            raise ValueError(f"position_rows and step_rows must be at least 2, got {self.position_rows} "
                             f"and {self.step_rows}")
        if not 0.0 <= self.label_dropout <= 1.0:
            raise ValueError(f"label_dropout must be in [0, 1], got {self.label_dropout}")
        object.__setattr__(self, "sampling", ar_sampling_config(self.sampling))

    @property
    def vocab_size(self) -> int:
        """Rows of the token embedding: ``K + 1 + C + 1``."""
        return self.codebook_size + self.num_classes + 2

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> ARConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads = rng.choice([1, 2])
        width = 8 * heads
        backbone = Part("dit", width=width, depth=rng.randint(1, 2), heads=heads, mlp_dim=2 * width, causal=True)
        return cls(codebook_size=rng.randint(2, 32), num_tokens=rng.randint(1, 8), num_classes=rng.randint(1, 10),
                   position_rows=2, step_rows=2, backbone=backbone,
                   sampling=ARSamplingConfig(guidance=rng.choice([0.0, 2.0]), temperature=1.0))


@register("generator", "ar")
class ARGenerator(SaveMixin, Generator):
    """Autoregressive generator: ``indices (B, N)`` + ``labels (B,)`` -> next-token ``logits (B, N, K)``.

    ``logits[:, i]`` is the prediction of ``indices[:, i]`` from the tokens before it in the order
    used (raster, or a permutation given as ``orders``), so the training loss is
    ``cross_entropy(logits, indices)`` whatever the order.

    Args:
        config: [`ARConfig`][tokenkit.generators.ar.ARConfig].
        backbone: The built causal backbone: ``backbone(tokens, condition, cache=...)``, ``new_cache``, ``width``.

    Examples:
        >>> import torch, tokenkit as tk
        >>> gen = tk.build("rar-tiny")
        >>> ids = gen.generate([1, 2], generator=torch.Generator().manual_seed(0))
        >>> ids.shape, bool((ids < gen.codebook_size).all())
        (torch.Size([2, 8]), True)
        >>> gen(ids, torch.tensor([1, 2])).shape  # teacher-forced next-token logits
        torch.Size([2, 8, 256])
    """

    Config = ARConfig
    autoregressive = True

    def __init__(self, config: ARConfig, backbone: nn.Module) -> None:
        super().__init__()
        if not getattr(getattr(backbone, "config", None), "causal", False):
            raise ContractError(f"the ar generator needs a causal backbone (e.g. Part('dit', causal=True)), "
                                f"got {type(backbone).__name__} without causal=True")
        self.config = config
        self.codebook_size = config.codebook_size
        self.num_tokens = config.num_tokens
        self.num_classes = config.num_classes
        self.mask_id = config.codebook_size
        self.random_ratio = 0.0
        """Probability that a training sequence is permuted (RAR's annealed randomness; set by the trainer)."""
        width = backbone.width
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.start_token = nn.Parameter(torch.zeros(1, width))
        self.position_embedding = nn.Parameter(torch.zeros(config.num_tokens + config.position_rows, width))
        self.target_position_embedding = nn.Parameter(torch.zeros(config.num_tokens + config.position_rows, width))
        self.step_embedding = nn.Parameter(torch.zeros(config.num_tokens + config.step_rows, width))
        self.backbone = backbone
        self.head_norm = nn.LayerNorm(width, eps=1e-6, elementwise_affine=False)
        self.head_modulation = nn.Linear(width, 2 * width)
        self.lm_head = nn.Linear(width, config.codebook_size)
        for tensor in (self.token_embedding.weight, self.position_embedding, self.target_position_embedding,
                       self.step_embedding, self.lm_head.weight):
            nn.init.trunc_normal_(tensor, std=0.02)
        nn.init.zeros_(self.lm_head.bias)
        nn.init.zeros_(self.head_modulation.weight)  # adaLN-Zero, as the blocks
        nn.init.zeros_(self.head_modulation.bias)

    # ---- inputs ----------------------------------------------------------------------------------------------
    def condition_ids(self, labels: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Token ids of the class labels ``(B,)``: ``K + 1 + label``, or the dropped class where ``drop``."""
        return class_token_ids(labels, drop, codebook_size=self.codebook_size, num_classes=self.num_classes)

    def _inputs(self, condition: torch.Tensor, ids: torch.Tensor, orders: torch.Tensor | None,
                start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and per-position conditions of sequence positions ``start .. m + 1`` of
        ``[start, class, ids (B, m) in order]``; ``orders`` ``(B, N)`` (``None``: raster)."""
        batch, m = ids.shape
        end = m + 2
        if orders is None:
            orders = torch.arange(self.num_tokens, device=ids.device).expand(batch, -1)
        class_embedding = self.token_embedding(condition)[:, None]
        pieces = []
        if start == 0:
            pieces.append(self.start_token.expand(batch, 1, -1).to(class_embedding.dtype))
        if start <= 1:
            pieces.append(class_embedding)
        first = max(start, 2) - 2  # first id among the positions
        pieces.append(self.token_embedding(ids[:, first:]))
        x = torch.cat(pieces, dim=1)
        prefix = torch.arange(min(start, 2), 2, device=ids.device).expand(batch, -1)  # start token, class: own rows
        x = x + F.embedding(torch.cat([prefix, 2 + orders[:, first:m]], dim=1), self.position_embedding)
        target = F.embedding(2 + orders[:, max(start, 1) - 1 : end - 1], self.target_position_embedding)
        if start == 0:  # the start token predicts nothing
            target = torch.cat([torch.zeros_like(target[:, :1]), target], dim=1)
        x = x + target
        steps = self.step_embedding[start:end]
        return x, class_embedding + steps

    def _head(self, hidden: torch.Tensor, condition: torch.Tensor | None,
              modulation: torch.Tensor | None = None) -> torch.Tensor:
        if modulation is None:
            modulation = self.head_modulation(F.silu(condition))
        scale, shift = modulation.chunk(2, dim=-1)
        return self.lm_head(self.head_norm(hidden) * (1 + scale) + shift)

    # ---- training --------------------------------------------------------------------------------------------
    def _check(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        check_generator_inputs(indices, labels, num_tokens=self.num_tokens, mask_id=self.mask_id,
                               num_classes=self.num_classes)

    def sample_orders(self, batch: int, *, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor | None:
        """Token orders for a training batch: each sequence is a random permutation with probability
        ``random_ratio``, else raster; ``None`` when all are raster.

        Returns:
            ``(B, N)`` int64 permutations of ``0..N-1``, or ``None``.
        """
        if self.random_ratio <= 0:
            return None
        device = device or self.start_token.device
        permute = torch.rand(batch, generator=generator, device=device) < self.random_ratio
        if not bool(permute.any()):
            return None
        random_orders = torch.rand(batch, self.num_tokens, generator=generator, device=device).argsort(dim=-1)
        raster = torch.arange(self.num_tokens, device=device).expand(batch, -1)
        return torch.where(permute[:, None], random_orders, raster)

    def forward(self, indices: torch.Tensor, labels: torch.Tensor, drop_labels: torch.Tensor | None = None, *,
                orders: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Teacher-forced next-token logits.

        Args:
            indices: ``(B, N)`` ids in ``[0, K)`` (``K`` is accepted as an id, as in every generator).
            labels: ``(B,)`` class ids in ``[0, C)``.
            drop_labels: ``(B,)`` bool, True where the class is replaced by the unconditional id.
                ``None``: drawn with ``label_dropout`` in training, none dropped in eval.
            orders: ``(B, N)`` the order in which each sequence is read (a permutation of ``0..N-1``).
                ``None``: in training drawn by [`sample_orders`][tokenkit.generators.ar.ARGenerator.sample_orders],
                in eval raster.
            generator: Random generator of the label dropout and the orders.

        Returns:
            ``(B, N, K)`` logits; ``logits[:, i]`` predicts ``indices[:, i]``.

        Raises:
            ContractError: Bad shapes, dtypes or ids out of range.
        """
        self._check(indices, labels)
        batch = indices.shape[0]
        if orders is None and self.training:
            orders = self.sample_orders(batch, generator=generator, device=indices.device)
        if orders is not None and (orders.shape != indices.shape or orders.is_floating_point()):
            raise ContractError(f"orders must be integer permutations of shape {tuple(indices.shape)}, "
                                f"got {orders.dtype} {tuple(orders.shape)}")
        ordered = indices if orders is None else indices.gather(1, orders)
        condition_ids = class_token_ids(labels, drop_labels, codebook_size=self.codebook_size,
                                        num_classes=self.num_classes, label_dropout=self.config.label_dropout,
                                        training=self.training, generator=generator)
        x, condition = self._inputs(condition_ids, ordered[:, :-1], orders, 0)
        logits = self._head(self.backbone(x, condition)[:, 1:], condition[:, 1:])
        if orders is None:
            return logits
        return torch.empty_like(logits).scatter_(1, orders[..., None].expand_as(logits), logits)

    # ---- sampling --------------------------------------------------------------------------------------------
    def new_cache(self, batch: int) -> KVCache:
        """An empty KV cache for sampling ``batch`` sequences (``N + 1`` positions)."""
        return self.backbone.new_cache(batch, self.num_tokens + 1)

    def next_logits(self, condition: torch.Tensor, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Logits ``(B, K)`` of the token after ``ids`` ``(B, m)`` (raster order) for class ids ``condition``.

        With ``cache`` only the positions not cached yet run (the whole prefix the first time, then
        one token), and the adaLN modulations of all ``N + 1`` positions, which depend on the class and
        the position only, are computed at the first call and kept in ``cache.memo``; without, the whole
        prefix runs.
        """
        start = 0 if cache is None else cache.length
        x, cond = self._inputs(condition, ids, None, start)
        if cache is None:
            hidden = self.backbone(x, cond)
            return self._head(hidden[:, -1], cond[:, -1])
        if "modulations" not in cache.memo:  # they depend on class and position only: once for all N + 1 positions
            every = self.token_embedding(condition)[:, None] + self.step_embedding[: self.num_tokens + 1]
            cache.memo["modulations"] = self.backbone.modulations(every)
            cache.memo["head"] = self.head_modulation(F.silu(every))
        end = start + x.shape[1]
        hidden = self.backbone(x, cache=cache, modulations=[m[:, start:end] for m in cache.memo["modulations"]])
        return self._head(hidden[:, -1], None, cache.memo["head"][:, end - 1])

    def generate(self, labels: torch.Tensor | list[int], *, generator: torch.Generator | None = None,
                 noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
                 callback: Callable[[int, torch.Tensor], None] | None = None, **sampling: Any) -> torch.Tensor:
        """Sample token ids for class ``labels``, one token per step (``N`` steps).

        Args:
            labels: ``(B,)`` class ids.
            generator: Random generator (fixes the samples).
            noise: Replaces the uniform draws (see
                [`generate_autoregressive`][tokenkit.generators.ar_sampling.generate_autoregressive]).
            callback: ``callback(step, ids)`` after each token.
            **sampling: Overrides of ``config.sampling`` (``guidance``, ``guidance_decay``, ``guidance_pow``,
                ``temperature``, ``top_k``, ``top_p``, ``kv_cache``).

        Returns:
            ``(B, N)`` int64 ids in ``[0, K)``.
        """
        return run_sampler(self, generate_autoregressive, labels, sampling, generator=generator, noise=noise,
                           callback=callback)
