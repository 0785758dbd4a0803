"""LPIPS perceptual loss (VGG16), via the ``lpips`` package.

"The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
https://arxiv.org/abs/1801.03924. Same network as TiTok's single-stage
recipes (taming-transformers VGG LPIPS, official ``modeling/modules/lpips.py``
``LPIPS`` L69-107): images mapped
[0, 1] -> [-1, 1], VGG16 features, unit-normalised channels, 1x1 linear heads,
spatial mean, summed over layers, then the batch mean.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import os
import random
import warnings
from pathlib import Path

import torch
from torch import nn

from tokenkit.errors import ConfigError
from tokenkit.kinds import Loss
from tokenkit.losses.base import LossInputs, check_same_images
from tokenkit.registry import register

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
"""The torchvision ImageNet VGG16 weights that LPIPS uses as its feature network."""


def vgg16_weights_path() -> Path:
    """Where torchvision looks for the VGG16 weights: ``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(VGG16_URL)


@functools.lru_cache(maxsize=2)
def _lpips_network(pretrained: bool) -> nn.Module:
    """The frozen LPIPS VGG network, built once per process (torchvision builds and initialises the whole
    VGG16 with its 100M-parameter classifier first, about a second); parts hold deep copies of it."""
    import lpips

    with warnings.catch_warnings():  # lpips calls torchvision's deprecated ``pretrained=`` argument
        warnings.simplefilter("ignore", UserWarning)
        net = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=not pretrained, verbose=False)
    return net.requires_grad_(False).eval()


@dataclasses.dataclass(frozen=True)
class LPIPSConfig:
    """Options of the ``lpips`` loss."""

    pretrained: bool = True
    """Use the ImageNet VGG16 features (must already be in the torch cache, see
    [`vgg16_weights_path`][tokenkit.losses.lpips.vgg16_weights_path]). ``False``
    builds a randomly initialised VGG (offline tests only; the linear heads,
    which ship in the ``lpips`` wheel, are always loaded)."""

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> LPIPSConfig:
        """An offline config for tests (random VGG features)."""
        return cls(pretrained=False)


@register("loss", "lpips")
class LPIPSLoss(Loss):
    """Batch-mean LPIPS distance between ``images`` and ``reconstructions`` (both in [0, 1]).

    The network is frozen (no parameter requires grad) and stays in eval mode
    even when the owning module is put in training mode; gradients flow to the
    reconstructions only.

    Args:
        config: [`LPIPSConfig`][tokenkit.losses.lpips.LPIPSConfig].

    Raises:
        ConfigError: ``pretrained=True`` and the VGG16 weights are not in the
            torch cache (tokenkit never downloads them implicitly).
    """

    Config = LPIPSConfig

    def __init__(self, config: LPIPSConfig) -> None:
        super().__init__()
        self.config = config
        if config.pretrained and not vgg16_weights_path().is_file():
            raise ConfigError(
                f"lpips(pretrained=True) needs the torchvision VGG16 weights at {vgg16_weights_path()} "
                f"(download {VGG16_URL} there, or set TORCH_HOME); use Part('lpips', pretrained=False) "
                "for an offline, randomly initialised network")
        self.net = copy.deepcopy(_lpips_network(config.pretrained))

    def train(self, mode: bool = True) -> LPIPSLoss:
        """Set the training flag of this module; the LPIPS network always stays in eval mode."""
        super().train(mode)
        self.net.eval()
        return self

    def distances(self, images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        """Per-image LPIPS ``(B,)`` between two ``(B, 3, H, W)`` batches in [0, 1]."""
        dtype = next(self.net.parameters()).dtype
        return self.net(reconstructions.to(dtype) * 2 - 1, images.to(dtype) * 2 - 1).flatten()

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        """Scalar LPIPS: per-image distances ``(B,)`` averaged over the batch."""
        check_same_images(inputs, "lpips loss")
        return self.distances(inputs.images, inputs.reconstructions).mean()
