"""What one training step computes, per kind of model (the trainer's loop is the same for all).

An objective maps ``(model, batch, step)`` to a
[`StepOutput`][tokenkit.train.objectives.StepOutput]:

| objective | model | batch | loss |
| --- | --- | --- | --- |
| [`Reconstruction`][tokenkit.train.objectives.Reconstruction] | tokenizer with a pixel output | ``image`` | ``loss_fn`` (default MSE + VQ loss, or + 1e-6 KL) |
| [`ProxyCodes`][tokenkit.train.objectives.ProxyCodes] | TiTok stage 1 (proxy head) | ``image`` | cross-entropy against a frozen teacher's codes + VQ loss |
| [`MaskedTokens`][tokenkit.train.objectives.MaskedTokens] | masked-token generator | ``tokens``, ``label`` | MaskGIT masked-token cross-entropy |
| [`NextTokens`][tokenkit.train.objectives.NextTokens] | autoregressive generator | ``tokens``, ``label`` | next-token cross-entropy, RAR's annealed random orders |
| [`DiffusionTokens`][tokenkit.train.objectives.DiffusionTokens] | MaskGen-KL | ``codes``, ``text`` | diffusion loss |

Text: a text-aware tokenizer (``takes_text``, TA-TiTok) trains on captioned images (the batch's ``text``:
one prompt per image, e.g. ``bundled`` with ``captions: true``); a text-conditioned generator
(``conditioning == "text"``, MaskGen) on pre-tokenized images with their captions. The prompts are
embedded by the model's own frozen text encoder without gradients.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from tokenkit import metrics
from tokenkit.contracts import TokenizerOutput
from tokenkit.errors import ConfigError, ContractError
from tokenkit.factory import build_part
from tokenkit.generators.sampling import SCHEDULES, mask_tokens, masked_token_loss
from tokenkit.kinds import Loss
from tokenkit.losses import LossInputs, recipes
from tokenkit.models.tokenizer import Tokenizer

LossFn = Callable[..., tuple[torch.Tensor, dict]]
"""``loss_fn(output, images, step, targets=None) -> (loss, {name: detached term})``."""


class StepOutput(NamedTuple):
    """One micro-batch's result.

    Attributes:
        loss: Scalar to back-propagate.
        terms: ``{name: detached scalar}`` logged next to the loss.
        stats: ``{name: detached scalar}`` statistics (codebook usage, accuracy, ...).
        output: The tokenizer output (adversarial terms read its ``images``), or ``None``.
        images: The batch's real images, or ``None``.

    Examples:
        >>> import tokenkit as tk
        >>> images = tk.data.sample_images(32, seed=0)
        >>> out = Reconstruction()(tk.build("titok-tiny"), {"image": images}, step=0)
        >>> isinstance(out, StepOutput), out.loss.shape, sorted(out.terms)
        (True, torch.Size([]), ['bottleneck', 'mse'])
        >>> out.loss.requires_grad, out.terms["mse"].requires_grad  # back-propagate the loss, log the terms
        (True, False)
    """

    loss: torch.Tensor
    terms: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor]
    output: TokenizerOutput | None = None
    images: torch.Tensor | None = None


KL_WEIGHT = 1e-6
"""Weight of a continuous bottleneck's KL in the default loss (the official VAE ``kl_weight``)."""


def reconstruction_loss(output: TokenizerOutput, images: torch.Tensor, step: int,
                        targets: torch.Tensor | None = None, *, bottleneck_weight: float = 1.0
                        ) -> tuple[torch.Tensor, dict]:
    """Default objective: mean squared error plus ``bottleneck_weight`` x the bottleneck loss (VQ terms or KL).

    Args:
        output: The tokenizer's output for ``images``.
        images: The real images ``(B, C, H, W)``.
        step: The training step (unused; part of the ``loss_fn`` signature).
        targets: Unused; part of the ``loss_fn`` signature.
        bottleneck_weight: Weight of ``output.loss``.

    Returns:
        ``(loss, {"mse": ..., "bottleneck": ...})``, the terms detached.

    Examples:
        >>> import tokenkit as tk
        >>> model, images = tk.build("titok-tiny"), tk.data.sample_images(32, seed=0)
        >>> loss, terms = reconstruction_loss(model(images), images, step=0)
        >>> loss.shape, sorted(terms)
        (torch.Size([]), ['bottleneck', 'mse'])
        >>> bool(loss == terms["mse"] + terms["bottleneck"])
        True
    """
    mse = (output.images.float() - images).square().mean()
    return mse + bottleneck_weight * output.loss, {"mse": mse.detach(), "bottleneck": output.loss.detach()}


def default_loss(model: nn.Module) -> LossFn:
    """[`reconstruction_loss`][tokenkit.train.objectives.reconstruction_loss] with the bottleneck
    weighted 1 for a discrete tokenizer and [`KL_WEIGHT`][tokenkit.train.objectives.KL_WEIGHT] for a
    continuous one (a KL at weight 1 collapses the posterior).

    Examples:
        >>> import tokenkit as tk
        >>> default_loss(tk.build("titok-tiny")) is reconstruction_loss  # VQ
        True
        >>> default_loss(tk.build("titok-tiny", quantizer="gaussian")).keywords  # a KL bottleneck
        {'bottleneck_weight': 1e-06}
    """
    if isinstance(model, Tokenizer) and model.codebook_size is None:
        return functools.partial(reconstruction_loss, bottleneck_weight=KL_WEIGHT)
    return reconstruction_loss


def loss_from_module(module: nn.Module) -> LossFn:
    """A ``loss_fn`` from a loss part (its [`terms_of`][tokenkit.kinds.Loss.terms_of] gives the logged terms).

    Raises:
        ConfigError: ``module`` is not a loss part ([`tokenkit.kinds.Loss`][tokenkit.kinds.Loss]).

    Examples:
        >>> import tokenkit as tk
        >>> loss_fn = loss_from_module(tk.build_part("loss", tk.Part("recon", kind="l1")))
        >>> model, images = tk.build("titok-tiny"), tk.data.sample_images(32, seed=0)
        >>> loss, terms = loss_fn(model(images), images, step=0)
        >>> loss.shape, sorted(terms)
        (torch.Size([]), ['loss'])
        >>> objective = Reconstruction(loss_fn)  # train with it
    """
    if not isinstance(module, Loss):
        raise ConfigError(f"a loss module must be a loss part (tokenkit.kinds.Loss), got {type(module).__name__}")

    def loss_fn(output: TokenizerOutput, images: torch.Tensor, step: int,
                targets: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
        inputs = LossInputs(images=images, reconstructions=output.images, quantizer_loss=output.loss,
                            targets=targets, step=step)
        result = module.terms_of(inputs)
        return result.loss, result.terms

    return loss_fn


class Objective(nn.Module):
    """Base class: ``objective(model, batch, step) -> StepOutput``; ``reconstruct`` feeds sample grids.

    Examples:
        A custom objective (pass it to the trainer as ``objective=``):

        >>> import tokenkit as tk
        >>> class L1(Objective):
        ...     def forward(self, model, batch, step):
        ...         images = batch["image"]
        ...         output = model(images)
        ...         l1 = (output.images - images).abs().mean()
        ...         return StepOutput(l1 + output.loss, {"l1": l1.detach()}, dict(output.stats), output, images)
        >>> out = L1()(tk.build("titok-tiny"), {"image": tk.data.sample_images(32, seed=0)}, step=0)
        >>> sorted(out.terms), out.loss.requires_grad
        (['l1'], True)
        >>> L1().reconstruct(tk.build("titok-tiny"), tk.data.sample_images(32, seed=0)) is None  # no sample grid
        True
    """

    def forward(self, model: nn.Module, batch: dict[str, Any], step: int) -> StepOutput:  # pragma: no cover
        raise NotImplementedError

    def reconstruct(self, model: nn.Module, images: torch.Tensor, text: Any = None) -> torch.Tensor | None:
        """Images ``(B, C, H, W)`` in [0, 1] (and their prompts, for a text-aware tokenizer) -> reconstructions,
        or ``None`` when there are none to show."""
        return None

    def evaluate(self, model: nn.Module, batch: dict[str, Any], *, lpips: bool = False
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Held-out metrics of one batch (model in eval mode, no gradients).

        Returns:
            ``({name: (B,) per-item values}, token ids or None)``; the ids feed codebook usage
            and perplexity over the whole evaluation set.
        """
        raise NotImplementedError(f"{type(self).__name__} has no evaluation")


def image_metrics(images: torch.Tensor, reconstructions: torch.Tensor, lpips: bool) -> dict[str, torch.Tensor]:
    """Per-image PSNR, SSIM and (optionally) LPIPS of reconstructions in [0, 1].

    Examples:
        >>> import tokenkit as tk
        >>> images = tk.data.sample_images(32, seed=0)
        >>> values = image_metrics(images, (images + 0.05).clamp(0, 1), lpips=False)
        >>> {name: tuple(value.shape) for name, value in values.items()}
        {'psnr': (6,), 'ssim': (6,)}
        >>> bool((values["psnr"] > 20).all())
        True
    """
    rec = reconstructions.float().clamp(0, 1)
    images = images.float()
    values = {"psnr": metrics.psnr(rec, images), "ssim": metrics.ssim(rec, images)}
    if lpips:
        values["lpips"] = metrics.lpips(rec, images)
    return values


def _images(batch: dict[str, Any]) -> torch.Tensor:
    if "image" not in batch:
        raise ContractError(f"this objective needs image batches (key 'image'), got keys {sorted(batch)}")
    return batch["image"]


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a wrapper such as ``DistributedDataParallel`` (its ``module``), else the model itself.

    Examples:
        >>> import torch
        >>> linear = torch.nn.Linear(2, 2)
        >>> unwrap(linear) is linear, unwrap(torch.nn.parallel.DataParallel(linear)) is linear
        (True, True)
    """
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def _embed(model: nn.Module, prompts: list[str]) -> Any:
    """``model.encode_text(prompts)`` without gradients (the text encoder is frozen)."""
    with torch.no_grad():
        return unwrap(model).encode_text(prompts)


def tokenizer_text(model: nn.Module, batch: dict[str, Any]) -> Any:
    """The text embeddings of the batch's captions for a text-aware tokenizer (``takes_text``), else ``None``.

    Raises:
        ContractError: A text-aware tokenizer and a batch without ``"text"`` (naming the keys it has).

    Examples:
        >>> import tokenkit as tk
        >>> images = tk.data.sample_images(32, names=["coffee", "rocket"], seed=0)
        >>> tokenizer_text(tk.build("titok-tiny"), {"image": images}) is None  # takes no text
        True
        >>> tokenizer_text(tk.build("tatitok-tiny"), {"image": images, "text": ["a cup", "a rocket"]}).tokens.shape
        torch.Size([2, 16, 16])
        >>> tokenizer_text(tk.build("tatitok-tiny"), {"image": images})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: a text-aware tokenizer trains on batches with captions (key 'text'), got ...
    """
    if not getattr(unwrap(model), "takes_text", False):
        return None
    if batch.get("text") is None:
        raise ContractError(f"a text-aware tokenizer trains on batches with captions (key 'text'), got keys "
                            f"{sorted(batch)}: set captions: true on the bundled dataset (or give every item a "
                            "\"text\")")
    return _embed(model, batch["text"])


class Reconstruction(Objective):
    """Tokenizer -> pixels, scored by ``loss_fn``.

    Args:
        loss_fn: ``loss_fn(output, images, step, targets=None)``; default
            [`reconstruction_loss`][tokenkit.train.objectives.reconstruction_loss] (the trainer
            passes [`default_loss`][tokenkit.train.objectives.default_loss] of the model).

    Examples:
        >>> import tokenkit as tk
        >>> model, images = tk.build("titok-tiny"), tk.data.sample_images(32, seed=0)
        >>> objective = Reconstruction()
        >>> out = objective(model, {"image": images}, step=0)
        >>> sorted(out.terms), sorted(out.stats)
        (['bottleneck', 'mse'], ['codebook_loss', 'commitment_loss', 'perplexity', 'usage'])
        >>> objective.reconstruct(model, images).shape
        torch.Size([6, 3, 32, 32])
        >>> values, ids = objective.evaluate(model.eval(), {"image": images})
        >>> sorted(values), tuple(ids.shape)  # per-image metrics, token ids
        (['psnr', 'ssim'], (6, 8))
    """

    def __init__(self, loss_fn: LossFn | None = None) -> None:
        super().__init__()
        self.loss_fn = loss_fn or reconstruction_loss

    def forward(self, model: nn.Module, batch: dict[str, Any], step: int) -> StepOutput:
        images = _images(batch)
        text = tokenizer_text(model, batch)
        output = model(images) if text is None else model(images, text=text)
        loss, terms = self.loss_fn(output, images, step)
        return StepOutput(loss, terms, dict(output.stats), output, images)

    @torch.no_grad()
    def reconstruct(self, model: nn.Module, images: torch.Tensor, text: Any = None) -> torch.Tensor:
        """Reconstructions ``(B, C, H, W)`` in [0, 1]; ``text``: the images' prompts for a text-aware tokenizer."""
        codes = model.encode(images).codes
        decoded = model.decode(codes) if text is None else model.decode(codes, text=text)
        return decoded.float().clamp(0, 1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Any], *, lpips: bool = False
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """PSNR, SSIM (and LPIPS) of the reconstructions (guided by the batch's ``text`` for a text-aware
        tokenizer); the token ids."""
        images = _images(batch)
        text = tokenizer_text(model, batch)
        q = model.encode(images)
        decoded = model.decode(q.codes) if text is None else model.decode(q.codes, text=text)
        return image_metrics(images, decoded, lpips), q.indices


class ProxyCodes(Objective):
    """TiTok stage 1: predict a frozen teacher tokenizer's codes.

    Official: ``ReconstructionLoss_Stage1``, ``modeling/modules/losses.py`` L68-106.

    The student is a composition whose decoder has a ``proxy`` head (``(B, L, K)``
    logits, no pixel decoder); the targets are ``teacher.tokenize(images)``
    flattened to ``(B, L)`` (MaskGIT-VQGAN: ``L`` = 256, ``K`` = 1024).

    Args:
        teacher: Frozen tokenizer (kept in eval mode, no gradients).
        loss_fn: ``loss_fn(output, images, step, targets)``; default
            [`recipes.stage1`][tokenkit.losses.recipes.stage1] (cross-entropy 1.0 + VQ loss 1.0).

    Raises:
        ConfigError: The teacher is not a discrete tokenizer.

    Examples:
        A MaskGIT-VQGAN teacher at 32x32 has a 2x2 grid of 1024 codes; the student's ``proxy`` head
        predicts them (``legacy=True`` with patch 16 gives a 2x2 grid, ``pixel_decoder=False`` for stage 1):

        >>> import tokenkit as tk
        >>> teacher = tk.build("maskgit-vqgan", image_size=32)  # give it pretrained=... in a real run
        >>> student = tk.build("titok-tiny", legacy=True, patch_size=16, pixel_decoder=False)
        >>> objective = ProxyCodes(teacher)
        >>> images = tk.data.sample_images(32, names=["astronaut", "coffee"], seed=0)
        >>> objective.targets(images).shape
        torch.Size([2, 4])
        >>> out = objective(student, {"image": images}, step=0)
        >>> sorted(out.terms), "proxy_accuracy" in out.stats
        (['proxy_ce', 'quantizer'], True)
    """

    def __init__(self, teacher: nn.Module, loss_fn: LossFn | None = None) -> None:
        super().__init__()
        if not isinstance(teacher, Tokenizer) or teacher.codebook_size is None:
            raise ConfigError("the stage-1 teacher must be a discrete tokenizer (with token ids), got a "
                              f"{type(teacher).__name__}")
        self.teacher = teacher.eval().requires_grad_(False)
        if loss_fn is None:
            loss_fn = loss_from_module(build_part("loss", recipes.stage1()))
        self.loss_fn = loss_fn

    def train(self, mode: bool = True) -> ProxyCodes:
        super().train(mode)
        self.teacher.eval()
        return self

    def targets(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's codes ``(B, L)``."""
        return self.teacher.tokenize(images).flatten(1)

    def forward(self, model: nn.Module, batch: dict[str, Any], step: int) -> StepOutput:
        images = _images(batch)
        targets = self.targets(images)
        text = tokenizer_text(model, batch)
        output = model(images) if text is None else model(images, text=text)
        logits = output.images
        if logits.ndim != 3 or logits.shape[1:] != (targets.shape[1], self.teacher.codebook_size):
            raise ContractError(f"the student must predict (B, {targets.shape[1]}, {self.teacher.codebook_size}) "
                                f"proxy logits for this teacher, got {tuple(logits.shape)}; build it with a proxy "
                                "head matching the teacher's grid and codebook, and no pixel decoder")
        loss, terms = self.loss_fn(output, images, step, targets=targets)
        accuracy = (logits.detach().argmax(-1) == targets).float().mean()
        return StepOutput(loss, terms, {**output.stats, "proxy_accuracy": accuracy}, None, images)

    @torch.no_grad()
    def reconstruct(self, model: nn.Module, images: torch.Tensor, text: Any = None) -> torch.Tensor:
        """The teacher decodes the student's most likely codes (as the official visualisation); ``text``: the
        images' prompts for a text-aware student."""
        logits = (model(images) if text is None else model(images, text=text)).images
        return self.teacher.detokenize(logits.argmax(-1)).float()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Any], *, lpips: bool = False
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Proxy-code accuracy, and PSNR/SSIM (LPIPS) of the teacher's decoding of the predicted codes."""
        images = _images(batch)
        text = tokenizer_text(model, batch)
        output = model(images) if text is None else model(images, text=text)
        predicted = output.images.argmax(-1)
        values = image_metrics(images, self.teacher.detokenize(predicted), lpips)
        values["proxy_accuracy"] = (predicted == self.targets(images)).float().mean(1)
        return values, output.indices


@dataclasses.dataclass(frozen=True)
class MaskedTokensConfig:
    """Options of the masked-token objective.

    Official defaults: ``losses`` in ``configs/training/generator/maskgit.yaml`` L45-47, used by
    ``MLMLoss`` (``modeling/modules/losses.py`` L358-376).

    Raises:
        ConfigError: An unknown schedule, ``label_smoothing`` outside [0, 1) or a negative ``unmasked_weight``.

    Examples:
        >>> MaskedTokensConfig()
        MaskedTokensConfig(schedule='arccos', label_smoothing=0.1, unmasked_weight=0.1)
        >>> MaskedTokensConfig(schedule="cosine", unmasked_weight=0.0).schedule
        'cosine'
        >>> MaskedTokensConfig(schedule="zigzag")
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: unknown mask schedule 'zigzag'; choose from arccos, cosine, linear
    """

    schedule: str = "arccos"
    """Mask-ratio schedule ``gamma`` (``arccos``, ``cosine``, ``linear``, ...)."""
    label_smoothing: float = 0.1
    """Label smoothing of the cross-entropy."""
    unmasked_weight: float = 0.1
    """Loss weight of the positions that were not masked."""

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"unknown mask schedule {self.schedule!r}; choose from {', '.join(sorted(SCHEDULES))}")
        if not 0 <= self.label_smoothing < 1 or self.unmasked_weight < 0:
            raise ConfigError("label_smoothing must be in [0, 1) and unmasked_weight >= 0, got "
                              f"{self.label_smoothing} and {self.unmasked_weight}")


class MaskedTokens(Objective):
    """MaskGIT training on pre-tokenized images: mask a random fraction, predict the ids.

    A class-conditional generator reads the batch's ``label``; a text-conditioned one
    (``conditioning == "text"``, MaskGen) its captions ``text``, embedded by the generator's
    frozen text encoder without gradients (``model(masked, embeddings)``: the generator drops
    prompts with its ``text_dropout`` in training mode, for guidance).

    Args:
        config: [`MaskedTokensConfig`][tokenkit.train.objectives.MaskedTokensConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> generator = tk.build("maskgit-tiny")  # 8 tokens over 256 codes, 10 classes
        >>> batch = {"tokens": torch.randint(0, 256, (4, 8)), "label": torch.tensor([0, 1, 2, 3])}
        >>> objective = MaskedTokens(MaskedTokensConfig(schedule="cosine"))
        >>> out = objective(generator, batch, step=0)
        >>> out.loss.shape, sorted(out.terms), sorted(out.stats)
        (torch.Size([]), ['masked_ce'], ['masked_accuracy'])
        >>> values, ids = objective.evaluate(generator.eval(), batch)
        >>> {name: tuple(value.shape) for name, value in values.items()}, ids
        ({'masked_ce': (4,), 'masked_accuracy': (4,)}, None)

        MaskGen trains on captions instead of labels:

        >>> maskgen = tk.build("maskgen-vq-tiny")  # 8 tokens over 256 codes, a tiny CLIP text tower
        >>> out = objective(maskgen, {"tokens": batch["tokens"], "text": ["a cat", "a dog", "a cup", "a rocket"]}, 0)
        >>> out.loss.shape, sorted(out.terms)
        (torch.Size([]), ['masked_ce'])
    """

    def __init__(self, config: MaskedTokensConfig | None = None) -> None:
        super().__init__()
        self.config = config or MaskedTokensConfig()

    def forward(self, model: nn.Module, batch: dict[str, Any], step: int) -> StepOutput:
        tokens, condition = _conditioned_tokens(model, batch)
        raw = unwrap(model)
        masked, mask = mask_tokens(tokens, raw.mask_id, schedule=self.config.schedule)
        logits = model(masked, condition)
        loss = masked_token_loss(logits, tokens, mask, label_smoothing=self.config.label_smoothing,
                                 unmasked_weight=self.config.unmasked_weight)
        hits = (logits.detach().argmax(-1) == tokens) & mask
        accuracy = hits.sum() / mask.sum().clamp(min=1)
        return StepOutput(loss, {"masked_ce": loss.detach()}, {"masked_accuracy": accuracy})

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Any], *, lpips: bool = False
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Masked-token cross-entropy and accuracy per sequence, under masks from a fixed seed
        (the global random state is not touched, so evaluating does not change training)."""
        import torch.nn.functional as F

        tokens, condition = _conditioned_tokens(model, batch)
        g = torch.Generator(device=tokens.device).manual_seed(0)
        masked, mask = mask_tokens(tokens, model.mask_id, schedule=self.config.schedule, generator=g)
        logits = model(masked, condition)
        ce = F.cross_entropy(logits.transpose(1, 2).float(), tokens, reduction="none")
        count = mask.sum(1).clamp(min=1)
        hits = (logits.argmax(-1) == tokens) & mask
        return {"masked_ce": (ce * mask).sum(1) / count, "masked_accuracy": hits.sum(1) / count}, None


@dataclasses.dataclass(frozen=True)
class NextTokensConfig:
    """Options of the next-token objective (RAR's randomness annealing).

    The probability ``r`` that a training sequence is read in a random order is 1 before
    ``anneal_start``, falls linearly to 0 at ``anneal_end`` and is 0 after (official
    ``get_rar_random_ratio``, ``utils/train_utils.py`` L687-695; ImageNet: 125,000 and 187,500 of
    250,000 steps). ``anneal_start = anneal_end = 0`` trains in raster order only.

    Raises:
        ConfigError: ``anneal_end`` before ``anneal_start``, or ``label_smoothing`` outside [0, 1).

    Examples:
        >>> config = NextTokensConfig(anneal_start=100, anneal_end=200)
        >>> [config.random_ratio(step) for step in (0, 100, 150, 200, 300)]
        [1.0, 1.0, 0.5, 0.0, 0.0]
        >>> NextTokensConfig().random_ratio(0)  # raster order only
        0.0
    """

    anneal_start: int = 0
    """Step from which the random-order probability falls from 1."""
    anneal_end: int = 0
    """Step at which it reaches 0."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy (official: none)."""

    def __post_init__(self) -> None:
        if not 0 <= self.anneal_start <= self.anneal_end:
            raise ConfigError(f"need 0 <= anneal_start <= anneal_end, got {self.anneal_start} and {self.anneal_end}")
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")

    def random_ratio(self, step: int) -> float:
        """Probability of a random order at training ``step``."""
        if step >= self.anneal_end:
            return 0.0
        if step < self.anneal_start:
            return 1.0
        return 1.0 - (step - self.anneal_start) / (self.anneal_end - self.anneal_start)


class NextTokens(Objective):
    """Autoregressive training on pre-tokenized images: predict every token from the ones before it.

    Each step sets the generator's ``random_ratio`` from the schedule of
    [`NextTokensConfig`][tokenkit.train.objectives.NextTokensConfig]; the generator then reads that
    share of the sequences in a random order (RAR). The loss is the cross-entropy of all ``N``
    next-token predictions (official ``ARLoss``, ``modeling/modules/losses.py`` L379-393).

    Args:
        config: [`NextTokensConfig`][tokenkit.train.objectives.NextTokensConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> generator = tk.build("rar-tiny").train()  # 8 tokens over 256 codes, 10 classes
        >>> batch = {"tokens": torch.randint(0, 256, (4, 8)), "label": torch.tensor([0, 1, 2, 3])}
        >>> objective = NextTokens(NextTokensConfig(anneal_start=0, anneal_end=100))
        >>> out = objective(generator, batch, step=50)
        >>> sorted(out.terms), sorted(out.stats), generator.random_ratio
        (['next_token_ce'], ['next_token_accuracy', 'random_ratio'], 0.5)
        >>> values, ids = objective.evaluate(generator.eval(), batch)
        >>> {name: tuple(value.shape) for name, value in values.items()}, ids
        ({'next_token_ce': (4,), 'next_token_accuracy': (4,)}, None)
    """

    def __init__(self, config: NextTokensConfig | None = None) -> None:
        super().__init__()
        self.config = config or NextTokensConfig()

    def forward(self, model: nn.Module, batch: dict[str, Any], step: int) -> StepOutput:
        import torch.nn.functional as F

        tokens, labels = _token_batch(batch)
        raw = unwrap(model)
        raw.random_ratio = self.config.random_ratio(step)
        logits = model(tokens, labels)
        loss = F.cross_entropy(logits.transpose(1, 2).float(), tokens, label_smoothing=self.config.label_smoothing)
        accuracy = (logits.detach().argmax(-1) == tokens).float().mean()
        return StepOutput(loss, {"next_token_ce": loss.detach()},
                          {"next_token_accuracy": accuracy, "random_ratio": torch.tensor(raw.random_ratio)})

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Any], *, lpips: bool = False
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Next-token cross-entropy and accuracy per sequence, in raster order."""
        import torch.nn.functional as F

        tokens, labels = batch["tokens"], batch["label"]
        logits = model(tokens, labels)
        ce = F.cross_entropy(logits.transpose(1, 2).float(), tokens, reduction="none").mean(1)
        return {"next_token_ce": ce, "next_token_accuracy": (logits.argmax(-1) == tokens).float().mean(1)}, None


def _token_batch(batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, labels)`` of a generator's training batch (a ``tokens`` dataset's)."""
    if "tokens" not in batch or "label" not in batch:
        raise ContractError(f"generator training needs batches with 'tokens' and 'label' (a 'tokens' dataset), "
                            f"got keys {sorted(batch)}")
    return batch["tokens"], batch["label"]


def _conditioned_tokens(model: nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, Any]:
    """``(tokens, labels)``, or ``(tokens, text embeddings)`` for a text-conditioned generator."""
    if getattr(unwrap(model), "conditioning", "class") != "text":
        return _token_batch(batch)
    if "tokens" not in batch or batch.get("text") is None:
        raise ContractError("a text-conditioned generator trains on batches with 'tokens' and 'text' (a 'tokens' "
                            "dataset pre-tokenized from captioned images, e.g. the bundled dataset with captions: "
                            f"true), got keys {sorted(batch)}")
    return batch["tokens"], _embed(model, batch["text"])


@dataclasses.dataclass(frozen=True)
class DiffusionTokensConfig:
    """Options of the diffusion-token objective (MaskGen-KL).

    Raises:
        ConfigError: A non-positive ``eval_draws``.

    Examples:
        >>> DiffusionTokensConfig()
        DiffusionTokensConfig(eval_draws=4)
        >>> DiffusionTokensConfig(eval_draws=0)
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: eval_draws must be a positive int, got 0
    """

    eval_draws: int = 4
    """Evaluation: the diffusion loss of each item is averaged over this many fixed seeds (each draws a
    masking ratio, order, timesteps and noise)."""

    def __post_init__(self) -> None:
        if isinstance(self.eval_draws, bool) or not isinstance(self.eval_draws, int) or self.eval_draws < 1:
            raise ConfigError(f"eval_draws must be a positive int, got {self.eval_draws!r}")


class DiffusionTokens(Objective):
    """MaskGen-KL training on pre-tokenized continuous codes with captions: the generator's own diffusion loss.

    Each step embeds the batch's captions with the generator's frozen text encoder (no gradients)
    and returns ``model.loss(codes, embeddings)``: the official training (a random masking ratio and
    order, text dropout in training mode, the diffusion MLP's noise-prediction loss on the hidden
    tokens), see [`MaskGenKL.loss`][tokenkit.generators.maskgen_kl.MaskGenKL.loss].

    Args:
        config: [`DiffusionTokensConfig`][tokenkit.train.objectives.DiffusionTokensConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> generator = tk.build("maskgen-kl-tiny")  # 8 tokens of 4 channels, a tiny CLIP text tower
        >>> batch = {"codes": torch.randn(2, 8, 4), "text": ["a cat", "a red rocket"]}
        >>> out = DiffusionTokens()(generator, batch, step=0)
        >>> out.loss.shape, sorted(out.terms)
        (torch.Size([]), ['diffusion'])
        >>> values, ids = DiffusionTokens().evaluate(generator.eval(), batch)
        >>> {name: tuple(value.shape) for name, value in values.items()}, ids
        ({'diffusion': (2,)}, None)
    """

    def __init__(self, config: DiffusionTokensConfig | None = None) -> None:
        super().__init__()
        self.config = config or DiffusionTokensConfig()

    def forward(self, model: nn.Module, batch: dict[str, Any], step: int) -> StepOutput:
        codes, text = _code_batch(batch)
        loss = call_through(model, "loss", codes, _embed(model, text))
        return StepOutput(loss, {"diffusion": loss.detach()}, {})

    @torch.no_grad()
    def evaluate(self, model: nn.Module, batch: dict[str, Any], *, lpips: bool = False
                 ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The diffusion loss of each item, averaged over ``eval_draws`` fixed seeds (the same for every item,
        whatever the batch: the global random state is not touched)."""
        codes, text = _code_batch(batch)
        embeddings = _embed(model, text)
        values = []
        for row in range(codes.shape[0]):
            one = embeddings.select(slice(row, row + 1))
            draws = [model.loss(codes[row : row + 1], one,
                                generator=torch.Generator(device=codes.device).manual_seed(seed))
                     for seed in range(self.config.eval_draws)]
            values.append(torch.stack(draws).float().mean())
        return {"diffusion": torch.stack(values)}, None


def _code_batch(batch: dict[str, Any]) -> tuple[torch.Tensor, list[str]]:
    """``(codes, text)`` of a continuous-token generator's batch."""
    if "codes" not in batch or batch.get("text") is None:
        raise ContractError("a continuous-token generator (maskgen-kl) trains on batches with 'codes' and 'text' (a "
                            "'tokens' dataset of a continuous tokenizer's codes pre-tokenized from captioned images, "
                            f"e.g. the bundled dataset with captions: true), got keys {sorted(batch)}")
    return batch["codes"], batch["text"]


def call_through(model: nn.Module, method: str, *args: Any, **kwargs: Any) -> Any:
    """``unwrap(model).<method>(*args, **kwargs)``, run inside the wrapper's forward when ``model`` is wrapped.

    ``DistributedDataParallel`` averages the gradients of a backward pass only when the pass went
    through its own ``forward``; a training method other than ``forward`` (MaskGen-KL's ``loss``)
    is therefore run as the wrapped module's forward for this one call.

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> call_through(nn.Linear(2, 3), "extra_repr")
        'in_features=2, out_features=3, bias=True'
    """
    raw = unwrap(model)
    if raw is model:
        return getattr(raw, method)(*args, **kwargs)
    had = "forward" in vars(raw)
    previous = vars(raw).get("forward")

    def restore() -> None:
        if had:
            raw.forward = previous
        else:
            vars(raw).pop("forward", None)

    def once(*a: Any, **k: Any) -> Any:
        restore()  # the method may call the module's own forward
        return getattr(raw, method)(*a, **k)

    raw.forward = once
    try:
        return model(*args, **kwargs)
    finally:
        restore()
