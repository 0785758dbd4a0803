"""Text-to-image masked-token generator over 1D tokens (MaskGen-VQ).

"Democratizing Text-to-Image Masked Generative Models with Compact Text-Aware One-Dimensional Tokens",
https://arxiv.org/abs/2501.07730. Official code: ``MaskGen_VQ`` in ``modeling/maskgen.py`` (L87-394) and
``WeightTiedLMHead`` in ``modeling/modules/blocks.py`` (L427-439) of bytedance/1d-tokenizer.

The image tokens (ids ``0..K-1``, the mask ``K``) are embedded, a learned position table is added and an
MM-DiT stack (``mmdit``) attends jointly over them and the projected per-token text condition (the text
encoder's penultimate hidden states), modulated by the projected pooled condition: the pooled text
embedding, concatenated with a sinusoidal encoding of ``100 * aesthetic score`` when ``micro_condition``
(official ``get_sinusoidal_encoding`` / ``concat_micro_cond``, L208-249). The head is the first ``K`` rows
of the token embedding (``weight_tying``) or a linear layer. The embedding keeps ``K + 1 + C + 1`` rows as the
official (class rows unused, kept for compatibility).

Sampling is TiTok's MaskGIT decoding with the ``cosine-ramp`` guidance (official ``MaskGen_VQ.generate``,
L291-394): the unconditional branch is the empty prompt ``""``, computed with the conditional one in one
batched forward pass.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from tokenkit.backbones.mmdit import import_diffusers_blocks
from tokenkit.contracts import TextEmbeddings, check_prompts, check_tensor
from tokenkit.errors import ConfigError, ContractError
from tokenkit.generators.sampling import SCHEDULES, TextSamplingConfig, generate, guidance_at, sampling_config
from tokenkit.kinds import Generator
from tokenkit.registry import register
from tokenkit.specs import Part
from tokenkit.validation import check_positive_ints
from tokenkit.weights.model_files import SaveMixin


@dataclasses.dataclass(frozen=True)
class MaskGenConfig:
    """Options of the ``maskgen`` generator (official ``model.maskgen`` of
    ``configs/infer/MaskGen/maskgen_vq_{l,xl}.yaml``)."""

    codebook_size: int = 8192
    """Image-token vocabulary ``K`` (the tokenizer's codebook size)."""
    num_tokens: int = 128
    """Tokens per image ``N``."""
    num_classes: int = 1000
    """Unused class rows of the token embedding (``K + 1 + C + 1`` rows, kept as the official for compatible
    weights)."""
    text_dim: int = 768
    """Width of the per-token text condition (the text encoder's ``width``)."""
    pooled_dim: int = 768
    """Width of the pooled text embedding (the text encoder's ``pooled_dim``)."""
    micro_condition: bool = True
    """Condition on an aesthetic score too (its sinusoidal encoding joins the pooled embedding)."""
    micro_condition_dim: int = 256
    """Width of the sinusoidal aesthetic-score encoding."""
    text_dropout: float = 0.1
    """Probability of replacing a prompt by the empty prompt in training (for classifier-free guidance)."""
    weight_tying: bool = True
    """Logits from the first ``K`` rows of the token embedding (else a separate linear head)."""
    schedule: Literal["arccos", "cosine", "linear"] = "arccos"
    """Mask schedule of training (official ``mask_schedule_strategy``; sampling has its own)."""
    backbone: Part = Part("mmdit", width=1024, depth=16, heads=16)
    """Joint text-image transformer (kind ``backbone``, ``mmdit``)."""
    text_encoder: Part | None = None
    """Text encoder (kind ``text_encoder``) for prompts; ``None``: give ``TextEmbeddings`` instead."""
    sampling: TextSamplingConfig = TextSamplingConfig()
    """Default sampling settings of [`generate`][tokenkit.generators.maskgen.MaskGen.generate]."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "codebook_size", "num_tokens", "text_dim", "pooled_dim", "micro_condition_dim")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0, got {self.num_classes!r}")
        if isinstance(self.text_dropout, bool) or not 0.0 <= self.text_dropout <= 1.0:
            raise ValueError(f"text_dropout must be in [0, 1], got {self.text_dropout!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not isinstance(self.backbone, Part):
            raise ValueError(f"backbone must be a Part, got {type(self.backbone).__name__}")
        if self.text_encoder is not None and not isinstance(self.text_encoder, Part):
            raise ValueError(f"text_encoder must be a Part or None, got {type(self.text_encoder).__name__}")
        object.__setattr__(self, "sampling", sampling_config(self.sampling, TextSamplingConfig))

    @property
    def vocab_size(self) -> int:
        """Rows of the token embedding: ``K + 1 + C + 1``."""
        return self.codebook_size + self.num_classes + 2

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> MaskGenConfig:
        """A small valid config for tests (randomised by ``rng``), with a tiny random ``openclip`` encoder."""
        rng = rng or random.Random(0)
        heads, text_heads = rng.choice([1, 2]), rng.choice([1, 2])
        text = Part("openclip", width=8 * text_heads, heads=text_heads, layers=2, embed_dim=rng.choice([4, 8]),
                    context_length=rng.randint(4, 12), seed=rng.randint(0, 9))
        return cls(codebook_size=rng.randint(2, 32), num_tokens=rng.randint(1, 8), num_classes=rng.randint(0, 3),
                   text_dim=text.config["width"], pooled_dim=text.config["embed_dim"],
                   micro_condition=rng.random() < 0.7, micro_condition_dim=rng.choice([3, 4, 8]),
                   weight_tying=rng.random() < 0.5,
                   backbone=Part("mmdit", width=8 * heads, depth=rng.randint(1, 2), heads=heads), text_encoder=text,
                   sampling=TextSamplingConfig(steps=rng.randint(1, 4), guidance=rng.choice([0.0, 3.0])))


def sinusoidal_encoding(values: torch.Tensor, dim: int, max_period: float = 1000.0) -> torch.Tensor:
    """``(B,)`` values -> ``(B, dim)`` float32 ``[sin(v * f), cos(v * f)]`` with frequencies
    ``f_j = max_period ** (-j / (dim // 2))`` (zero-padded when ``dim`` is odd), as the official
    ``MaskGen_VQ.get_sinusoidal_encoding`` (``modeling/maskgen.py`` L208-238; note ``max_period`` 1000).

    Examples:
        >>> sinusoidal_encoding(torch.tensor([0.0, 650.0]), 4).shape
        torch.Size([2, 4])
        >>> sinusoidal_encoding(torch.tensor([0.0]), 3)
        tensor([[0., 1., 0.]])
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=values.device) / half)
    angles = values[:, None].float() * freqs[None]
    return nn.functional.pad(torch.cat([angles.sin(), angles.cos()], dim=-1), (0, dim % 2))


def _rows(text: TextEmbeddings, batch: int) -> TextEmbeddings:
    """``text`` with ``batch`` rows (one row is repeated)."""
    return text if text.hidden.shape[0] == batch else TextEmbeddings(*(t.expand(batch, *t.shape[1:]) for t in text))


@register("generator", "maskgen")
class MaskGen(SaveMixin, Generator):
    """Text-conditioned masked-token generator: ``indices (B, N)`` + text -> ``logits (B, N, K)``.

    Args:
        config: [`MaskGenConfig`][tokenkit.generators.maskgen.MaskGenConfig].
        backbone: The built joint backbone (``mmdit``: ``backbone(x, context, pooled)``, exposing ``width``).
        text_encoder: The built text encoder, or ``None`` (then give ``TextEmbeddings``).

    Raises:
        ConfigError: A text encoder whose widths differ from ``text_dim`` / ``pooled_dim``.

    Examples:
        >>> import torch, tokenkit as tk
        >>> gen = tk.build("maskgen-vq-tiny")
        >>> ids = gen.generate(["a red rocket", "a cat"], steps=4, generator=torch.Generator().manual_seed(0))
        >>> ids.shape, bool((ids < gen.codebook_size).all())
        (torch.Size([2, 8]), True)
    """

    Config = MaskGenConfig
    conditioning = "text"

    def __init__(self, config: MaskGenConfig, backbone: nn.Module, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.codebook_size = config.codebook_size
        self.num_tokens = config.num_tokens
        self.num_classes = config.num_classes
        self.mask_id = config.codebook_size
        if text_encoder is not None and (text_encoder.width, text_encoder.pooled_dim) != (config.text_dim,
                                                                                          config.pooled_dim):
            raise ConfigError(f"generator 'maskgen': its text encoder gives widths {text_encoder.width} (tokens) and "
                              f"{text_encoder.pooled_dim} (pooled), but text_dim={config.text_dim} and "
                              f"pooled_dim={config.pooled_dim}")
        width = backbone.width
        micro = config.micro_condition_dim if config.micro_condition else 0
        self.text_proj = nn.Linear(config.text_dim, width)
        self.pooled_proj = nn.Linear(config.pooled_dim + micro, width)
        self.backbone = backbone
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        self.position_embedding = nn.Parameter(torch.zeros(config.num_tokens, width))
        self.lm_head = None if config.weight_tying else nn.Linear(width, config.codebook_size)
        self.text_encoder = text_encoder
        self._init_weights()

    def _init_weights(self) -> None:
        """The official initialisation (``MaskGen_VQ._init_weights``, L147-164), the text encoder left alone."""
        ada_norm = import_diffusers_blocks()[1]

        def init(module: nn.Module) -> None:
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm) and module.weight is not None:
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, ada_norm):
                nn.init.zeros_(module.linear.weight)
                nn.init.zeros_(module.linear.bias)

        for module in (self.text_proj, self.pooled_proj, self.backbone, self.token_embedding, self.lm_head):
            if module is not None:
                module.apply(init)
        nn.init.trunc_normal_(self.position_embedding, std=0.02)

    # ---- inputs --------------------------------------------------------------------------------------------------
    def _check_indices(self, indices: object) -> int:
        check_tensor(indices, "indices")
        if indices.ndim != 2 or indices.shape[1] != self.num_tokens or indices.is_floating_point() \
                or indices.dtype == torch.bool:
            raise ContractError(f"indices must be integer ids of shape (B, {self.num_tokens}), "
                                f"got {indices.dtype} {tuple(indices.shape)}")
        if indices.numel() and not indices.is_meta:
            lo, hi = torch.aminmax(indices)
            if lo < 0 or hi > self.mask_id:
                raise ContractError(f"indices must lie in [0, {self.mask_id}] (ids or the mask id {self.mask_id}), "
                                    f"got range [{int(lo)}, {int(hi)}]")
        return indices.shape[0]

    def _check_text(self, text: object, rows: tuple[int, ...] | None = None, name: str = "text") -> TextEmbeddings:
        """``text`` as ``TextEmbeddings`` with ``hidden (R, L, text_dim)`` and ``pooled (R, pooled_dim)``, ``R`` in
        ``rows`` (``None``: any)."""
        if not isinstance(text, TextEmbeddings):
            raise ContractError(f"{name} must be TextEmbeddings (from encode_text or a text encoder), "
                                f"got {type(text).__name__}")
        hidden, pooled = text.hidden, text.pooled
        check_tensor(hidden, f"{name}.hidden")
        check_tensor(pooled, f"{name}.pooled")
        want = "B" if rows is None else " or ".join(str(r) for r in dict.fromkeys(rows))
        if hidden.ndim != 3 or hidden.shape[2] != self.config.text_dim or not hidden.is_floating_point() \
                or rows is not None and hidden.shape[0] not in rows:
            raise ContractError(f"{name}.hidden must be float of shape ({want}, L, {self.config.text_dim}), "
                                f"got {hidden.dtype} {tuple(hidden.shape)}")
        if pooled.ndim != 2 or pooled.shape != (hidden.shape[0], self.config.pooled_dim) \
                or not pooled.is_floating_point():
            hint = "; squeeze the official (B, 1, E) with .squeeze(1)" if pooled.ndim == 3 else ""
            raise ContractError(f"{name}.pooled must be float of shape ({hidden.shape[0]}, {self.config.pooled_dim}),"
                                f" got {pooled.dtype} {tuple(pooled.shape)}{hint}")
        return text

    def _aesthetic(self, aesthetic: object, batch: int, device: torch.device) -> torch.Tensor:
        if aesthetic is None:
            aesthetic = self.config.sampling.aesthetic
        if isinstance(aesthetic, (int, float)) and not isinstance(aesthetic, bool):
            return torch.full((batch,), float(aesthetic), device=device)
        check_tensor(aesthetic, "aesthetic")
        if aesthetic.shape != (batch,) or aesthetic.dtype == torch.bool or aesthetic.is_complex():
            raise ContractError(f"aesthetic must be a number or real scores of shape ({batch},), "
                                f"got {aesthetic.dtype} {tuple(aesthetic.shape)}")
        return aesthetic.to(device) if aesthetic.is_floating_point() else aesthetic.to(device, torch.float32)

    def _empty(self, null_text: TextEmbeddings | None, text: TextEmbeddings, why: str) -> TextEmbeddings:
        """The unconditional embeddings (``null_text``, else the text encoder's ``""``) in the shape of ``text``."""
        if null_text is None:
            if self.text_encoder is None:
                raise ContractError(f"generator 'maskgen' was built without a text encoder, so {why} needs the "
                                    "empty-prompt embeddings: pass null_text=TextEmbeddings of \"\" (1 row)")
            null_text = self.text_encoder.empty_prompt()
        batch, length = text.hidden.shape[:2]
        null_text = self._check_text(null_text, (1, batch), "null_text")
        if null_text.hidden.shape[1] != length:
            raise ContractError(f"null_text.hidden has {null_text.hidden.shape[1]} tokens per prompt, "
                                f"text.hidden {length}")
        return _rows(TextEmbeddings(*(t.to(self.token_embedding.weight.device) for t in null_text)), batch)

    # ---- forward -------------------------------------------------------------------------------------------------
    def encode_text(self, prompts: str | Sequence[str]) -> TextEmbeddings:
        """Embed prompts with the generator's text encoder.

        Raises:
            ContractError: No text encoder (give ``TextEmbeddings`` instead), or prompts that are not strings.
        """
        if self.text_encoder is None:
            raise ContractError("generator 'maskgen' was built without a text encoder: give TextEmbeddings (e.g. "
                                "from tk.build_part('text_encoder', 'openclip', ...)) instead of prompts, or build "
                                "it with text_encoder=tk.Part('openclip', ...)")
        return self.text_encoder(check_prompts(prompts))

    def forward(self, indices: torch.Tensor, text: TextEmbeddings, *, aesthetic: torch.Tensor | float | None = None,
                drop_text: torch.Tensor | None = None, null_text: TextEmbeddings | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Logits over the image tokens (official ``MaskGen_VQ.forward``, L251-287, on already masked ids).

        Args:
            indices: ``(B, N)`` ids in ``[0, K]`` (``K`` = mask).
            text: [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings]: ``hidden (B, L, text_dim)`` and
                ``pooled (B, pooled_dim)`` are read.
            aesthetic: ``(B,)`` aesthetic scores or one number (``None``: ``sampling.aesthetic``); read with
                ``micro_condition`` only.
            drop_text: ``(B,)`` bool, True where the prompt is replaced by the empty prompt (official
                ``preprocess_condition``, L190-206). ``None``: drawn with ``text_dropout`` in training, none
                dropped in eval.
            null_text: The empty-prompt embeddings (1 or ``B`` rows) for ``drop_text``; default: the text encoder's.
            generator: Random generator for the text dropout.

        Returns:
            ``(B, N, K)`` logits.

        Raises:
            ContractError: Bad shapes, dtypes or ids out of range, or a drop without empty-prompt embeddings.
        """
        batch = self._check_indices(indices)
        text = self._check_text(text, (batch,))
        hidden, pooled = text.hidden, text.pooled
        drawn = drop_text is None and self.training and self.config.text_dropout > 0
        if drawn:
            drop_text = torch.rand(batch, generator=generator, device=indices.device) < self.config.text_dropout
        if drop_text is not None:
            check_tensor(drop_text, "drop_text")
            if drop_text.shape != (batch,) or drop_text.dtype != torch.bool:
                raise ContractError(f"drop_text must be bool of shape ({batch},), "
                                    f"got {drop_text.dtype} {tuple(drop_text.shape)}")
            if drawn or bool(drop_text.any()):
                why = "training with text_dropout > 0" if drawn else "drop_text"
                empty = self._empty(null_text, text, why)
                drop = drop_text.to(hidden.device)
                hidden = torch.where(drop[:, None, None], empty.hidden.to(hidden.dtype), hidden)
                pooled = torch.where(drop[:, None], empty.pooled.to(pooled.dtype), pooled)
        dtype = self.token_embedding.weight.dtype
        x = self.token_embedding(indices) + self.position_embedding.to(dtype)
        context = self.text_proj(hidden.to(dtype))
        if self.config.micro_condition:
            scores = self._aesthetic(aesthetic, batch, pooled.device)
            micro = sinusoidal_encoding(scores * 100, self.config.micro_condition_dim)
            pooled = torch.cat([pooled.float(), micro], dim=-1)
        x = self.backbone(x, context, self.pooled_proj(pooled.to(dtype)))
        if self.lm_head is not None:
            return self.lm_head(x)
        return torch.matmul(x, self.token_embedding.weight[: self.codebook_size].t())

    # ---- sampling ------------------------------------------------------------------------------------------------
    def generate(self, prompts: str | Sequence[str] | TextEmbeddings, *, null_text: TextEmbeddings | None = None,
                 generator: torch.Generator | None = None,
                 noise: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
                 callback: Callable[[int, torch.Tensor], None] | None = None, **sampling: Any) -> torch.Tensor:
        """Sample token ids for prompts by iterative decoding (official ``MaskGen_VQ.generate``, L291-394).

        Args:
            prompts: One prompt, ``B`` prompts, or their [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings].
            null_text: Embeddings of the unconditional branch (1 or ``B`` rows); default: the empty prompt ``""``.
            generator: Random generator (fixes the samples).
            noise: Replaces the uniform draws (see [`generate`][tokenkit.generators.sampling.generate]).
            callback: ``callback(step, ids)`` after each step.
            **sampling: Overrides of ``config.sampling`` (``steps``, ``guidance``, ``guidance_decay``,
                ``guidance_pow``, ``temperature``, ``softmax_annealing``, ``schedule``, ``compat``,
                ``aesthetic``). ``aesthetic`` is used as given (the official ``generate`` always takes the
                config's ``sample_aesthetic_score``, whatever it is passed).

        Returns:
            ``(B, N)`` int64 ids in ``[0, K)``.

        Raises:
            ContractError: Bad prompts or embeddings, an unknown sampling option, or prompts (or guidance
                without ``null_text``) for a generator built without a text encoder.
        """
        settings = self._settings(sampling)
        text = self._check_text(prompts if isinstance(prompts, TextEmbeddings) else self.encode_text(prompts))
        device = self.token_embedding.weight.device
        text = TextEmbeddings(*(t.to(device) for t in text))
        guided = any(guidance_at(settings, step) != 0 for step in range(settings.steps))
        empty = self._empty(null_text, text, "guidance") if guided else None
        condition = TextCondition(self, text, empty, settings.aesthetic)
        was_training = self.training
        self.eval()
        try:
            return generate(self, condition, settings, generator=generator, noise=noise, callback=callback)
        finally:
            self.train(was_training)

    def _settings(self, overrides: dict[str, Any]) -> TextSamplingConfig:
        try:
            return dataclasses.replace(self.config.sampling, **overrides)
        except TypeError as err:
            fields = ", ".join(f.name for f in dataclasses.fields(self.config.sampling))
            raise ContractError(f"{err}; sampling options of {type(self).__name__} are {fields}") from None


class TextCondition:
    """Text embeddings as a sampler [`Condition`][tokenkit.generators.sampling.Condition]: the guided pass
    runs ``[text; null_text]`` as one batch of ``2B`` (official ``MaskGen_VQ.generate`` L347-355).

    Args:
        model: The generator.
        text: ``B`` rows.
        null_text: ``B`` rows of the unconditional branch, or ``None`` (unguided only).
        aesthetic: Aesthetic score of every item.
    """

    def __init__(self, model: MaskGen, text: TextEmbeddings, null_text: TextEmbeddings | None,
                 aesthetic: float) -> None:
        self.model, self.text, self.aesthetic = model, text, aesthetic
        self.both = None if null_text is None else TextEmbeddings(*(torch.cat([a, b]) for a, b in zip(text, null_text)))
        self.batch, self.device = text.hidden.shape[0], text.hidden.device

    def logits(self, ids: torch.Tensor, guided: bool) -> torch.Tensor:
        if not guided:
            return self.model(ids, self.text, aesthetic=self.aesthetic)
        if self.both is None:
            raise ContractError("guided sampling needs the unconditional embeddings (null_text)")
        return self.model(torch.cat([ids, ids]), self.both, aesthetic=self.aesthetic)
