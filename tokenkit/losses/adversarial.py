"""Adversarial loss: generator hinge term, discriminator hinge loss and LeCAM.

Official: ``hinge_d_loss`` and ``compute_lecam_loss`` (``modeling/modules/losses.py`` L34-65), used
by ``ReconstructionLoss_Stage2._forward_generator`` / ``_forward_discriminator`` (L163-258).

The ``adversarial`` part owns the discriminator (a sub-part, kind
``"discriminator"``). Its ``forward`` is the generator term
``-mean(D(x_hat))`` (zero before ``start_step``);
[`discriminator_loss`][tokenkit.losses.adversarial.AdversarialLoss.discriminator_loss]
is the discriminator step: ``hinge(D(x), D(sg(x_hat)))`` plus LeCAM.

There is no adaptive (gradient-norm ratio) weight: like TiTok, the weight is a
constant of the [`composite`][tokenkit.losses.composite.CompositeLoss].
LeCAM: "Regularizing Generative Adversarial Networks under Limited Data",
https://arxiv.org/abs/2104.03310.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from tokenkit.kinds import Loss
from tokenkit.losses.base import LossInputs, as_float, check_same_images
from tokenkit.registry import register
from tokenkit.specs import Part


def hinge_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """``0.5 * (mean(relu(1 - D(x))) + mean(relu(1 + D(x_hat))))``.

    Examples:
        >>> import torch
        >>> hinge_discriminator_loss(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 1.0])).item()
        0.75
    """
    return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())


class LeCAM(nn.Module):
    """LeCAM regulariser with EMA anchors of the batch-mean logits.

    ``loss = weight * (mean(relu(mean D(x) - ema_fake)^2) + mean(relu(ema_real - mean D(x_hat))^2))``,
    then (when ``update``) ``ema <- decay * ema + (1 - decay) * batch mean`` for both anchors.

    Args:
        weight: ``lambda`` (TiTok: 0.001).
        decay: EMA decay of the anchors (TiTok: 0.999).

    Examples:
        >>> import torch
        >>> lecam = LeCAM(weight=1.0, decay=0.5)
        >>> lecam(torch.tensor([2.0]), torch.tensor([-1.0])).item()  # anchors start at 0: 2^2 + 1^2
        5.0
        >>> lecam.ema_real_logits_mean.item(), lecam.ema_fake_logits_mean.item()
        (1.0, -0.5)
    """

    def __init__(self, weight: float = 0.001, decay: float = 0.999) -> None:
        super().__init__()
        if weight < 0 or not 0 <= decay <= 1:
            raise ValueError(f"LeCAM needs weight >= 0 and decay in [0, 1], got {weight}, {decay}")
        self.weight, self.decay = weight, decay
        self.register_buffer("ema_real_logits_mean", torch.zeros(1))
        self.register_buffer("ema_fake_logits_mean", torch.zeros(1))

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, *, update: bool = True) -> torch.Tensor:
        """Scalar LeCAM loss of this batch's logits; updates the anchors afterwards when ``update``."""
        real_mean, fake_mean = real_logits.mean(), fake_logits.mean()
        loss = (F.relu(real_mean - self.ema_fake_logits_mean).square().mean()
                + F.relu(self.ema_real_logits_mean - fake_mean).square().mean())
        if update:
            with torch.no_grad():
                self.ema_real_logits_mean.mul_(self.decay).add_((1 - self.decay) * real_mean.detach())
                self.ema_fake_logits_mean.mul_(self.decay).add_((1 - self.decay) * fake_mean.detach())
        return self.weight * loss


@dataclasses.dataclass(frozen=True)
class AdversarialConfig:
    """Options of the ``adversarial`` loss."""

    discriminator: Part = Part("nlayer")  # noqa: RUF009  (Part is immutable)
    """The discriminator (kind ``"discriminator"``; built and injected by the factory)."""
    start_step: int = 0
    """First step at which the terms are active (TiTok stage 2: 20,000; single stage: 200,000)."""
    lecam_weight: float = 0.001
    """LeCAM ``lambda`` in the discriminator step (0 disables it)."""
    lecam_decay: float = 0.999
    """EMA decay of the LeCAM anchors."""

    def __post_init__(self) -> None:
        if not isinstance(self.start_step, int) or self.start_step < 0:
            raise ValueError(f"start_step must be an int >= 0, got {self.start_step!r}")
        if self.lecam_weight < 0 or not 0 <= self.lecam_decay <= 1:
            raise ValueError("lecam_weight must be >= 0 and lecam_decay in [0, 1]")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> AdversarialConfig:
        """A small config for tests (tiny discriminator; randomised by ``rng``)."""
        rng = rng or random.Random(0)
        return cls(discriminator=Part("nlayer", hidden_channels=4, num_stages=rng.randint(1, 2), norm_groups=4,
                                      pool_size=2), start_step=rng.choice((0, 5)))


@register("loss", "adversarial")
class AdversarialLoss(Loss):
    """Generator-side hinge term ``-mean(D(x_hat))``, active from ``start_step``.

    The discriminator's parameters receive no gradient from ``forward`` (it
    runs with detached weights); the gradient reaches the reconstructions.
    Before ``start_step`` the value is a zero that is still part of the graph.

    Args:
        config: [`AdversarialConfig`][tokenkit.losses.adversarial.AdversarialConfig].
        discriminator: The built discriminator module.
    """

    Config = AdversarialConfig
    trains_discriminator = True

    def __init__(self, config: AdversarialConfig, discriminator: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.start_step = config.start_step
        self.discriminator = discriminator
        self.lecam = LeCAM(config.lecam_weight, config.lecam_decay) if config.lecam_weight > 0 else None

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        """Generator term for ``inputs.reconstructions`` ``(B, C, H, W)``."""
        check_same_images(inputs, "adversarial loss")
        recon = as_float(inputs.reconstructions)
        if not self.active(inputs.step):
            return recon.sum() * 0.0
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        frozen.update(dict(self.discriminator.named_buffers()))
        return -functional_call(self.discriminator, frozen, (recon,)).mean()

    def discriminator_loss(self, inputs: LossInputs) -> torch.Tensor:
        """Discriminator step: ``hinge(D(x), D(sg(x_hat)))`` + LeCAM (zero before ``start_step``).

        Gradients reach only the discriminator; the LeCAM anchors are updated
        (in training mode) after the loss is computed.
        """
        check_same_images(inputs, "adversarial discriminator loss")
        real = self.discriminator(as_float(inputs.images.detach()))
        fake = self.discriminator(as_float(inputs.reconstructions.detach()))
        if not self.active(inputs.step):
            return (real.sum() + fake.sum()) * 0.0
        loss = hinge_discriminator_loss(real, fake)
        if self.lecam is not None:
            loss = loss + self.lecam(real, fake, update=self.training)
        return loss
