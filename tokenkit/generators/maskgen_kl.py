"""Text-to-image masked generator over continuous tokens with a diffusion head (MaskGen-KL).

"Democratizing Text-to-Image Masked Generative Models with Compact Text-Aware One-Dimensional Tokens"
(MaskGen), https://arxiv.org/abs/2501.07730, Section 3.3; official code: ``MaskGen_KL`` in
``modeling/maskgen.py`` (L395-726 of bytedance/1d-tokenizer) and ``DiffLoss`` in
``modeling/modules/losses.py`` (L396-444). The per-token loss and sampler are MAR's
(https://arxiv.org/abs/2406.11838): an MM-DiT ([`mmdit`][tokenkit.backbones.mmdit.MMDiT]) reads the
visible tokens, a learned mask vector at the hidden ones and the prompt (CLIP's penultimate hidden states
as the text stream; the pooled embedding, with a sinusoidal encoding of an aesthetic score, for adaLN),
and gives a condition ``z`` per position; a small MLP ([`DiffusionHead`][tokenkit.generators.diffusion_head.
DiffusionHead]) denoises each hidden token from ``z`` (a cosine-schedule diffusion,
[`diffusion`][tokenkit.generators.diffusion]).

Tokens are the tokenizer's continuous codes ``(B, N, C)`` (e.g. TA-TiTok-KL's), multiplied by
``scale_factor`` inside the model; [`generate`][tokenkit.generators.maskgen_kl.MaskGenKL.generate] returns
them divided again, ready for the tokenizer's decoder.

Official defects and quirks, and what this does instead:

* ``forward_loss`` passes ``text_condition=`` to ``DiffLoss.forward``, which takes no such argument
  (a ``TypeError``: the official KL training path cannot run). This implements the evident intent, the
  diffusion head conditioned on ``z`` only, as ``DiffLoss.forward`` is written and as sampling uses it.
* ``initialize_weights`` applies Xavier-uniform to every ``nn.Linear``, the diffusion head's included, so
  MAR's zero-initialised adaLN and output layers are not zero; kept (the text encoder excepted).
* One masking ratio per batch in training (a single ``t ~ U(0, 1)``; ``ceil(N * acos(t) / (pi / 2))``
  tokens masked in every row); kept.
* ``sample_tokens`` hard-codes ``.cuda()`` and draws orders from numpy's global RNG; here orders come from
  ``generator`` on the model's device. It returns ``(B, C, 1, N)``; here ``(B, N, C)``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tokenkit.contracts import TextEmbeddings, check_prompts
from tokenkit.errors import ConfigError, ContractError
from tokenkit.generators.diffusion import GaussianDiffusion, cosine_diffusion
from tokenkit.generators.diffusion_head import DiffusionHead, DiffusionHeadConfig
from tokenkit.kinds import Generator
from tokenkit.registry import register
from tokenkit.specs import Part
from tokenkit.validation import check_positive_ints
from tokenkit.weights.model_files import SaveMixin

GUIDANCE_SCHEDULES = ("linear", "constant")


@dataclasses.dataclass(frozen=True)
class MaskGenKLSamplingConfig:
    """Sampling settings of ``maskgen-kl`` (official: ``model.maskgen`` of
    ``configs/infer/MaskGen/maskgen_kl_{l,xl}.yaml`` and ``DiffLoss``'s ``num_sampling_steps``)."""

    steps: int = 32
    """Masked decoding steps (official ``num_iter``)."""
    guidance: float = 3.0
    """Classifier-free guidance scale on the head's ``eps`` (official ``cfg``; exactly 1 disables the
    unconditional branch)."""
    guidance_schedule: Literal["linear", "constant"] = "linear"
    """``"linear"``: ``1 + (guidance - 1) * (N - masked_next) / N`` (Muse); ``"constant"``: ``guidance``."""
    temperature: float = 1.0
    """Scale of the noise of each diffusion step."""
    aesthetic: float = 6.5
    """Aesthetic score of the micro-condition (official ``sample_aesthetic_score``)."""
    diffusion_steps: int = 100
    """Diffusion steps per token, respaced from the training steps (official ``num_sampling_steps``)."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "steps", "diffusion_steps")
        if self.guidance_schedule not in GUIDANCE_SCHEDULES:
            raise ValueError(f"guidance_schedule must be one of {', '.join(GUIDANCE_SCHEDULES)}, "
                             f"got {self.guidance_schedule!r}")
        for name in ("guidance", "temperature", "aesthetic"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")


def _sampling(value: Any) -> MaskGenKLSamplingConfig:
    if value is None:
        return MaskGenKLSamplingConfig()
    if isinstance(value, MaskGenKLSamplingConfig):
        return value
    if isinstance(value, Mapping):
        return MaskGenKLSamplingConfig(**value)
    raise ValueError(f"sampling must be a MaskGenKLSamplingConfig or a mapping, got {type(value).__name__}")


@dataclasses.dataclass(frozen=True)
class MaskGenKLConfig:
    """Options of the ``maskgen-kl`` generator."""

    num_tokens: int = 32
    """Tokens per image ``N`` (the tokenizer's)."""
    token_dim: int = 16
    """Channels per token ``C`` (the tokenizer's continuous code width)."""
    scale_factor: float = 0.7525
    """Codes are multiplied by it for the model and generated codes divided by it (official
    ``vq_model.scale_factor``)."""
    text_dim: int = 768
    """Width of the text encoder's hidden states (``TextEmbeddings.hidden``)."""
    pooled_dim: int = 768
    """Width of the pooled text embedding (``TextEmbeddings.pooled``)."""
    micro_condition: bool = True
    """Append a sinusoidal encoding of an aesthetic score to the pooled embedding."""
    micro_condition_dim: int = 256
    """Width of that encoding (even)."""
    text_dropout: float = 0.1
    """Probability of replacing a prompt by the empty prompt in training (for guidance)."""
    head_width: int = 1024
    """Width of the diffusion MLP (official ``losses.diffloss_w``)."""
    head_depth: int = 8
    """Residual blocks of the diffusion MLP (official ``losses.diffloss_d``)."""
    diffusion_batch_mul: int = 4
    """Diffusion-loss draws (timestep and noise) per token in training."""
    diffusion_timesteps: int = 1000
    """Steps ``T`` of the training diffusion (cosine schedule)."""
    backbone: Part = Part("mmdit")
    """Joint text-image transformer (kind ``backbone``, ``forward(x, context, pooled)``: ``mmdit``)."""
    text_encoder: Part | None = None
    """Text encoder (kind ``text_encoder``, e.g. ``openclip``) for prompts; ``None``: the model takes
    [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings] only."""
    sampling: MaskGenKLSamplingConfig = MaskGenKLSamplingConfig()
    """Default settings of [`generate`][tokenkit.generators.maskgen_kl.MaskGenKL.generate]."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "num_tokens", "token_dim", "text_dim", "pooled_dim", "micro_condition_dim",
                            "head_width", "head_depth", "diffusion_batch_mul", "diffusion_timesteps")
        if self.micro_condition_dim % 2:
            raise ValueError(f"micro_condition_dim must be even (sine, cosine pairs), got {self.micro_condition_dim}")
        if isinstance(self.scale_factor, bool) or not isinstance(self.scale_factor, (int, float)) \
                or not math.isfinite(self.scale_factor) or self.scale_factor <= 0:
            raise ValueError(f"scale_factor must be a finite number > 0, got {self.scale_factor!r}")
        if not 0.0 <= self.text_dropout <= 1.0:
            raise ValueError(f"text_dropout must be in [0, 1], got {self.text_dropout}")
        object.__setattr__(self, "sampling", _sampling(self.sampling))
        if self.sampling.diffusion_steps > self.diffusion_timesteps:
            raise ValueError(f"sampling.diffusion_steps ({self.sampling.diffusion_steps}) must not exceed "
                             f"diffusion_timesteps ({self.diffusion_timesteps})")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> MaskGenKLConfig:
        """A small valid config for tests (randomised by ``rng``), with a tiny random text encoder."""
        rng = rng or random.Random(0)
        text = Part("openclip", width=16, heads=2, layers=2, embed_dim=rng.choice([8, 16]), context_length=16)
        return cls(num_tokens=rng.randint(2, 8), token_dim=rng.randint(1, 4), text_dim=16,
                   pooled_dim=text.config["embed_dim"], micro_condition_dim=rng.choice([4, 8]),
                   head_width=16, head_depth=rng.randint(1, 2), diffusion_batch_mul=rng.randint(1, 2),
                   backbone=Part("mmdit", width=16, depth=rng.randint(1, 2), heads=2), text_encoder=text,
                   sampling=MaskGenKLSamplingConfig(steps=rng.randint(1, 3), diffusion_steps=rng.randint(1, 4)))


def aesthetic_encoding(scores: torch.Tensor, dim: int) -> torch.Tensor:
    """MaskGen-KL's micro-condition ``(B, dim)`` of scores ``(B,)``: ``x = 100 * score``, interleaved
    ``[sin(x w_0), cos(x w_0), sin(x w_1), ...]`` with ``w_k = 10000 ** (-2k / dim)`` (official
    ``MaskGen_KL.get_sinusoidal_encoding``; MaskGen-VQ's differs: concatenated, other frequencies).

    Examples:
        >>> aesthetic_encoding(torch.tensor([0.0]), 4).tolist()
        [[0.0, 1.0, 0.0, 1.0]]
    """
    x = scores.float() * 100
    freqs = torch.pow(10000, -torch.arange(0, dim, 2, dtype=torch.float32, device=x.device) / dim)
    args = x[:, None] * freqs
    return torch.stack([torch.sin(args), torch.cos(args)], dim=-1).reshape(x.shape[0], dim)


@register("generator", "maskgen-kl")
class MaskGenKL(SaveMixin, Generator):
    """Text-to-image masked generator of continuous tokens: ``tokens (B, N, C)`` + ``mask (B, N)`` + prompt
    embeddings -> per-position conditions ``z (B, N, W)`` for the diffusion head; sampling by
    [`generate`][tokenkit.generators.maskgen_kl.MaskGenKL.generate].

    Args:
        config: [`MaskGenKLConfig`][tokenkit.generators.maskgen_kl.MaskGenKLConfig].
        backbone: The built backbone (``mmdit``, exposing ``width``).
        text_encoder: The built text encoder, or ``None``.

    Raises:
        ConfigError: ``text_dim`` / ``pooled_dim`` differ from the text encoder's widths.

    Examples:
        >>> import torch, tokenkit as tk
        >>> gen = tk.build("maskgen-kl-tiny")
        >>> codes = gen.generate(["a red rocket", "a cat"], generator=torch.Generator().manual_seed(0))
        >>> codes.shape
        torch.Size([2, 8, 4])
    """

    Config = MaskGenKLConfig
    conditioning = "text"
    codebook_size = None

    def __init__(self, config: MaskGenKLConfig, backbone: nn.Module, text_encoder: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.num_tokens = config.num_tokens
        self.token_dim = config.token_dim
        self.num_classes = 0  # no class labels: conditioned on text
        if text_encoder is not None:
            for name, ours, theirs in (("text_dim", config.text_dim, text_encoder.width),
                                       ("pooled_dim", config.pooled_dim, text_encoder.pooled_dim)):
                if ours != theirs:
                    raise ConfigError(f"maskgen-kl: {name} is {ours} but the text encoder gives {theirs}; "
                                      f"set {name}={theirs}")
        width = backbone.width
        self.width = width
        pooled_in = config.pooled_dim + (config.micro_condition_dim if config.micro_condition else 0)
        self.text_proj = nn.Linear(config.text_dim, width)
        self.pooled_proj = nn.Linear(pooled_in, width)
        self.backbone = backbone
        self.token_proj = nn.Linear(config.token_dim, width)
        self.token_norm = nn.LayerNorm(width, eps=1e-6)
        self.position_embedding = nn.Parameter(torch.zeros(config.num_tokens, width))
        self.mask_token = nn.Parameter(torch.zeros(1, width))
        self.head_position_embedding = nn.Parameter(torch.zeros(config.num_tokens, width))
        self.head = DiffusionHead(DiffusionHeadConfig(token_dim=config.token_dim, cond_dim=width,
                                                      width=config.head_width, depth=config.head_depth))
        self.text_encoder = text_encoder
        self._init_weights()

    def _init_weights(self) -> None:
        """The official initialisation (``MaskGen_KL.initialize_weights``): N(0, 0.02) tables and mask vector,
        Xavier-uniform for every linear layer (backbone and head included), LayerNorms at 1 / 0."""
        for table in (self.mask_token, self.position_embedding, self.head_position_embedding):
            nn.init.normal_(table, std=0.02)
        for name, module in self.named_modules():
            if name.startswith("text_encoder"):
                continue
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                if module.weight is not None:
                    nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # ---- conditioning --------------------------------------------------------------------------------------
    def encode_text(self, prompts: str | Sequence[str]) -> TextEmbeddings:
        """Prompts -> [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings] with the model's text encoder.

        Raises:
            ContractError: No text encoder (naming how to give one), or prompts that are not strings.
        """
        return self._require_text_encoder()(check_prompts(prompts))

    def _require_text_encoder(self) -> nn.Module:
        if self.text_encoder is None:
            raise ContractError("maskgen-kl was built without a text encoder (config text_encoder=None): pass "
                                "TextEmbeddings instead of prompts, or build it with "
                                "text_encoder=tk.Part('openclip', ...)")
        return self.text_encoder

    def _check_text(self, text: object, batch: int | None, what: str = "text") -> TextEmbeddings:
        if not isinstance(text, TextEmbeddings):
            raise ContractError(f"{what} must be tokenkit TextEmbeddings (from model.encode_text(prompts)), "
                                f"got {type(text).__name__}")
        hidden, pooled = text.hidden, text.pooled
        rows = hidden.shape[0] if hidden.ndim == 3 else None
        if hidden.ndim != 3 or hidden.shape[2] != self.config.text_dim:
            raise ContractError(f"{what}.hidden must be (B, L, {self.config.text_dim}), got {tuple(hidden.shape)}")
        if pooled.shape != (rows, self.config.pooled_dim):
            raise ContractError(f"{what}.pooled must be ({rows}, {self.config.pooled_dim}), got {tuple(pooled.shape)}")
        if batch is not None and rows != batch:
            raise ContractError(f"{what} holds {rows} prompt(s) for {batch} token sequence(s); "
                                f"repeat it with {what}.repeat(n) or give one prompt per sequence")
        return text

    def _aesthetic(self, aesthetic: float | torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if aesthetic is None:
            aesthetic = self.config.sampling.aesthetic
        if isinstance(aesthetic, (int, float)) and not isinstance(aesthetic, bool):
            return torch.full((batch,), float(aesthetic), device=device)
        if not isinstance(aesthetic, torch.Tensor) or aesthetic.shape != (batch,) \
                or not aesthetic.is_floating_point():
            shape = tuple(aesthetic.shape) if isinstance(aesthetic, torch.Tensor) else type(aesthetic).__name__
            raise ContractError(f"aesthetic must be a number or a float tensor of shape ({batch},), got {shape}")
        return aesthetic.to(device)

    def condition(self, text: TextEmbeddings, aesthetic: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projected text stream ``(B, L, W)`` and pooled condition ``(B, W)`` (with the micro-condition)."""
        dtype = self.text_proj.weight.dtype
        pooled = text.pooled.to(dtype)
        if self.config.micro_condition:
            pooled = torch.cat([pooled, aesthetic_encoding(aesthetic, self.config.micro_condition_dim).to(dtype)], -1)
        return self.text_proj(text.hidden.to(dtype)), self.pooled_proj(pooled)

    def _drop_text(self, text: TextEmbeddings, drop: torch.Tensor) -> TextEmbeddings:
        """Rows of ``text`` where ``drop`` is True replaced by the empty prompt's embedding."""
        if not bool(drop.any()):
            return text
        if self.text_encoder is None:
            raise ContractError(f"maskgen-kl: text dropout (text_dropout={self.config.text_dropout}) needs the "
                                "empty prompt's embedding but the model has no text encoder: build it with one, "
                                "pass drop_text=None in eval mode, or set text_dropout=0")
        null = self.text_encoder.empty_prompt()
        rows = drop.to(text.hidden.device)
        return TextEmbeddings(*(torch.where(rows.view(-1, *[1] * (t.ndim - 1)), n.to(t), t)
                                for t, n in zip(text, null)))

    # ---- forward and loss ----------------------------------------------------------------------------------
    def _decode(self, tokens: torch.Tensor, mask: torch.Tensor, context: torch.Tensor,
                pooled: torch.Tensor) -> torch.Tensor:
        x = self.token_norm(self.token_proj(tokens.to(self.token_proj.weight.dtype)))
        x = torch.where(mask[..., None], self.mask_token.to(x.dtype), x)
        x = self.backbone(x + self.position_embedding, context, pooled)
        return x + self.head_position_embedding

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, text: TextEmbeddings, *,
                aesthetic: float | torch.Tensor | None = None, drop_text: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Conditions of the diffusion head (official ``forward_mae_decoder``).

        Args:
            tokens: ``(B, N, C)`` scaled tokens (codes times ``scale_factor``); values at masked positions
                are ignored.
            mask: ``(B, N)`` bool, True where the token is hidden (replaced by the mask vector).
            text: [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings] of ``B`` prompts.
            aesthetic: Aesthetic scores ``(B,)`` or one number; ``None``: ``sampling.aesthetic``.
            drop_text: ``(B,)`` bool, True where the prompt is replaced by the empty one. ``None``: drawn
                with ``text_dropout`` in training, none in eval.
            generator: Random generator of the text dropout.

        Returns:
            ``(B, N, W)``.

        Raises:
            ContractError: Bad shapes or types (naming the tensor), or text dropout without a text encoder.
        """
        n, c = self.num_tokens, self.token_dim
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 3 or tokens.shape[1:] != (n, c) \
                or not tokens.is_floating_point():
            got = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ContractError(f"tokens must be float (B, {n}, {c}), got {got}")
        batch = tokens.shape[0]
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != (batch, n):
            got = (f"{tuple(mask.shape)} {mask.dtype}" if isinstance(mask, torch.Tensor) else type(mask).__name__)
            raise ContractError(f"mask must be bool ({batch}, {n}), got {got}")
        text = self._check_text(text, batch)
        if drop_text is None and self.training and self.config.text_dropout > 0:
            drop_text = torch.rand(batch, generator=generator, device=tokens.device) < self.config.text_dropout
        if drop_text is not None:
            if not isinstance(drop_text, torch.Tensor) or drop_text.dtype != torch.bool or drop_text.shape != (batch,):
                raise ContractError(f"drop_text must be a bool tensor of shape ({batch},)")
            text = self._drop_text(text, drop_text)
        context, pooled = self.condition(text, self._aesthetic(aesthetic, batch, tokens.device))
        return self._decode(tokens, mask, context, pooled)

    def loss(self, codes: torch.Tensor, text: TextEmbeddings, *, aesthetic: float | torch.Tensor | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss (official ``MaskGen_KL.forward`` + ``DiffLoss.forward``, see the module note).

        Scales the codes, draws a random order per sample and one masking ratio ``acos(t) / (pi / 2)``,
        ``t ~ U(0, 1)``, for the batch (``ceil`` of it times ``N`` tokens hidden), runs ``forward`` (text
        dropout in training) and averages the diffusion loss (``eps`` MSE + variational bound) over the
        hidden tokens, each drawn ``diffusion_batch_mul`` times with its own timestep and noise.

        Args:
            codes: ``(B, N, C)`` tokenizer codes (unscaled; the official training draws a fresh posterior
                sample of the Gaussian bottleneck each step); treated as data (detached).
            text: [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings] of ``B`` prompts.
            aesthetic: Aesthetic scores ``(B,)`` or one number; ``None``: ``sampling.aesthetic``.
            generator: Random generator of every draw.

        Returns:
            Scalar loss.
        """
        n, c = self.num_tokens, self.token_dim
        if not isinstance(codes, torch.Tensor) or codes.ndim != 3 or codes.shape[1:] != (n, c) \
                or not codes.is_floating_point():
            got = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ContractError(f"codes must be float (B, {n}, {c}), got {got}")
        x = codes.detach().float() * self.config.scale_factor
        batch, device = x.shape[0], x.device
        orders = torch.rand(batch, n, generator=generator, device=device).argsort(dim=1)
        t = torch.rand(1, generator=generator, device=device)
        ratio = (torch.acos(t) / (math.pi * 0.5)).clamp(1e-6, 1.0)
        hidden = int(torch.ceil(n * ratio))
        mask = torch.zeros(batch, n, dtype=torch.bool, device=device).scatter(1, orders[:, :hidden], True)
        z = self(x, mask, text, aesthetic=aesthetic, generator=generator)
        repeat = self.config.diffusion_batch_mul
        target = x.reshape(batch * n, -1).repeat(repeat, 1)
        z = z.reshape(batch * n, -1).repeat(repeat, 1)
        weight = mask.reshape(batch * n).repeat(repeat).float()
        diffusion = cosine_diffusion(self.config.diffusion_timesteps)
        steps = torch.randint(0, diffusion.num_timesteps, (target.shape[0],), generator=generator, device=device)
        noise = torch.randn(target.shape, generator=generator, device=device)
        dtype = self.token_proj.weight.dtype
        per_row = diffusion.training_loss(lambda xt, ts: self.head(xt.to(dtype), ts, z).float(), target, steps, noise)
        return (per_row * weight).sum() / weight.sum()

    # ---- sampling ------------------------------------------------------------------------------------------
    def generate(self, prompts: str | Sequence[str] | TextEmbeddings, *, null_text: TextEmbeddings | None = None,
                 generator: torch.Generator | None = None,
                 callback: Callable[[int, torch.Tensor], None] | None = None, **sampling: Any) -> torch.Tensor:
        """Sample codes for prompts (official ``MaskGen_KL.sample_tokens``, see the module note).

        Each sample decodes its tokens in its own random order over ``steps`` steps: at step ``s`` the tokens
        still hidden beyond ``max(1, min(hidden - 1, floor(N cos(pi/2 (s+1)/steps))))`` (all at the last
        step) are sampled by the diffusion head from their ``z``, with guidance on ``eps`` against the empty
        prompt (one batched pass over ``[prompts; empty]`` through the transformer and the head).

        Args:
            prompts: One string, ``B`` strings, or their [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings].
            null_text: Embedding of the unconditional prompt (one row); default: the text encoder's of ``""``.
            generator: Random generator (orders and noise; fixes the samples).
            callback: ``callback(step, codes)`` after each step, with the current codes ``(B, N, C)``
                (unscaled; zeros where still hidden).
            **sampling: Overrides of ``config.sampling`` (``steps``, ``guidance``, ``guidance_schedule``,
                ``temperature``, ``aesthetic``, ``diffusion_steps``).

        Returns:
            ``(B, N, C)`` float32 codes for the tokenizer's decoder.

        Raises:
            ContractError: Bad prompts or embeddings, no text encoder for prompts or the empty prompt, or an
                unknown sampling option (the message lists them).
        """
        try:
            settings = dataclasses.replace(self.config.sampling, **sampling)
        except TypeError as err:
            fields = ", ".join(f.name for f in dataclasses.fields(MaskGenKLSamplingConfig))
            raise ContractError(f"{err}; sampling options of MaskGenKL are {fields}") from None
        except ValueError as err:
            raise ContractError(f"invalid sampling option: {err}") from None
        if settings.diffusion_steps > self.config.diffusion_timesteps:
            raise ContractError(f"diffusion_steps ({settings.diffusion_steps}) must not exceed the training "
                                f"diffusion's {self.config.diffusion_timesteps} steps")
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                text = prompts if isinstance(prompts, TextEmbeddings) else self.encode_text(prompts)
                text = self._check_text(text, None, "prompts")
                if settings.guidance != 1.0:
                    if null_text is None:
                        null_text = self._require_text_encoder().empty_prompt()
                    null_text = self._check_text(null_text, 1, "null_text")
                return self._sample(text, null_text, settings, generator, callback)
        finally:
            self.train(was_training)

    def _sample(self, text: TextEmbeddings, null_text: TextEmbeddings | None, settings: MaskGenKLSamplingConfig,
                generator: torch.Generator | None,
                callback: Callable[[int, torch.Tensor], None] | None) -> torch.Tensor:
        device = self.mask_token.device
        batch, n = text.hidden.shape[0], self.num_tokens
        guided = settings.guidance != 1.0
        aesthetic = torch.full((batch,), float(settings.aesthetic), device=device)
        context, pooled = self.condition(TextEmbeddings(*(t.to(device) for t in text)), aesthetic)
        if guided:  # rows [prompts; empty prompt]: one batched pass per step
            null = TextEmbeddings(*(t.to(device) for t in null_text)).repeat(batch)
            null_context, null_pooled = self.condition(null, aesthetic)
            context, pooled = torch.cat([context, null_context]), torch.cat([pooled, null_pooled])
        orders = torch.rand(batch, n, generator=generator, device=device).argsort(dim=1)
        tokens = torch.zeros(batch, n, self.token_dim, device=device)
        mask = torch.ones(batch, n, dtype=torch.bool, device=device)
        diffusion = cosine_diffusion(self.config.diffusion_timesteps, settings.diffusion_steps)
        for step in range(settings.steps):
            z = self._decode(torch.cat([tokens, tokens]) if guided else tokens,
                             torch.cat([mask, mask]) if guided else mask, context, pooled)
            ratio = float(np.cos(math.pi / 2.0 * (step + 1) / settings.steps))  # numpy's cos, as the official
            next_len = max(1, min(int(mask[0].sum()) - 1, math.floor(n * ratio)))
            mask_next = torch.zeros_like(mask).scatter(1, orders[:, :next_len], True)
            rows = (mask if step == settings.steps - 1 else mask & ~mask_next).nonzero(as_tuple=True)
            mask = mask_next
            if rows[0].numel():
                scale = settings.guidance if settings.guidance_schedule == "constant" else \
                    1 + (settings.guidance - 1) * (n - next_len) / n
                tokens[rows] = self._denoise(diffusion, z[:batch][rows], z[batch:][rows] if guided else None,
                                             scale, settings.temperature, generator)
            if callback is not None:
                callback(step, tokens / self.config.scale_factor)
        return tokens / self.config.scale_factor

    def _denoise(self, diffusion: GaussianDiffusion, z_cond: torch.Tensor, z_uncond: torch.Tensor | None,
                 scale: float, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
        """Sample ``M`` tokens ``(M, C)`` from their conditions ``z_cond`` ``(M, W)`` (guided against
        ``z_uncond`` unless ``None``) with the diffusion head (official ``DiffLoss.sample``)."""
        dtype = self.mask_token.dtype

        def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if z_uncond is None:
                return self.head(x.to(dtype), t, z_cond).float()
            return self.head.guided(x.to(dtype), t, z_cond, z_uncond, scale).float()

        noise = torch.randn(z_cond.shape[0], self.token_dim, generator=generator, device=z_cond.device)
        return diffusion.sample(model, noise, temperature=temperature, generator=generator)
