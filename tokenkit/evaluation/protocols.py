"""Evaluation protocols: every choice that changes an FID, written down and stored with each result.

Published FIDs differ in steps that look innocent: how real images are resized
and cropped, how images in [0, 1] become integers, how they reach 299x299, the
arithmetic precision, and the Inception Score's splits. A protocol fixes all of
them:

| | `titok` | `adm` | `clean` |
| --- | --- | --- | --- |
| what it reproduces | the official TiTok evaluator (`utils/train_utils.py` `eval_reconstruction`, `evaluator/evaluator.py`) | the guided-diffusion suite (`evaluations/evaluator.py`) | clean-fid's `clean` mode (Parmar et al. 2022) |
| real images -> tokenizer size | resize shorter side (PIL bicubic, antialiased) + centre crop | ADM `center_crop_arr` (BOX halvings, bicubic, centre crop) | as `titok` |
| real [0, 1] -> uint8 | `(x * 255).to(uint8)` (truncation) | round | round |
| reconstruction [0, 1] -> uint8 | clamp, `round(x * 255) / 255`, then truncation | clamp, truncation | clamp, round |
| generated sample [0, 1] -> uint8 | clamp, truncation (`demo_util.sample_fn`) | clamp, truncation | clamp, round |
| to 299x299 | TF 1.x bilinear | TF 1.x bilinear | PIL bicubic on float channels, clipped |
| Inception arithmetic | float64 | float32 | float32 |
| Inception Score | 1 split, eps 1e-16 | splits of 5,000 images, eps 0 | splits of 5,000 images, eps 0 |
| generation metrics | as `adm` (the official README scores samples with ADM's suite) | FID, sFID, IS, precision/recall | FID, KID, IS, precision/recall |

Every protocol computes the Fréchet distance with ``scipy.linalg.sqrtm`` as both
official evaluators do (see [`frechet_distance`][tokenkit.evaluation.scores.frechet_distance]
for fewer images than feature dimensions), KID with 100 subsets of up to 1,000
images, and precision / recall with k = 3.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import torch
from PIL import Image

from tokenkit.datasets.transforms import crop_box, resize_shorter
from tokenkit.errors import ConfigError
from tokenkit.specs import Part

Rounding = Literal["truncate", "round", "round-truncate"]


@dataclasses.dataclass(frozen=True)
class Protocol:
    """One evaluation protocol (see the module table). Stored in every result as ``to_dict()``."""

    name: str
    """Preset name."""
    summary: str
    """What it reproduces."""
    crop: Literal["resize-center-crop", "adm-center-crop"]
    """How real image files are brought to the tokenizer's size."""
    real_uint8: Rounding
    """Real images (float in [0, 1], as read) -> integers for the Inception."""
    reconstruction_uint8: Rounding
    """Reconstructions -> integers."""
    sample_uint8: Rounding
    """Generated samples -> integers (and the exported ``.npz``)."""
    inception_resize: Literal["tf1-bilinear", "pil-bicubic"]
    """How the integers reach 299x299."""
    feature_dtype: Literal["float32", "float64"]
    """Arithmetic of the Inception network."""
    is_split_size: int | None
    """Images per Inception Score split (``None``: one split)."""
    is_eps: float
    """Added inside the Inception Score's logarithms."""
    generation: str | None = None
    """Protocol used for generated samples when it differs (``titok`` -> ``adm``)."""
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    pr_k: int = 3

    def to_dict(self) -> dict:
        """Plain data, for results and reference-statistics files."""
        return dataclasses.asdict(self)

    def for_generation(self) -> Protocol:
        """The protocol that scores generated samples under this preset."""
        return PROTOCOLS[self.generation] if self.generation else self

    # ---- real images ---------------------------------------------------------------------------------------
    def crop_image(self, image: Image.Image, size: int) -> Image.Image:
        """An RGB PIL image -> ``size`` x ``size`` by this protocol's crop."""
        if self.crop == "adm-center-crop":
            return adm_center_crop(image, size)
        image = resize_shorter(image, size)
        top, left = crop_box(image.height, image.width, size, False, None)
        return image.crop((left, top, left + size, top + size))

    # ---- [0, 1] -> integers --------------------------------------------------------------------------------
    def to_uint8(self, images: torch.Tensor, kind: Literal["real", "reconstruction", "sample"]) -> torch.Tensor:
        """``(B, 3, H, W)`` float in [0, 1] -> ``uint8`` by this protocol's rule for ``kind``.

        Examples:
            >>> import torch
            >>> from tokenkit.evaluation.protocols import PROTOCOLS
            >>> x = torch.tensor([0.5, 0.999, 1.2]).view(1, 3, 1, 1)
            >>> PROTOCOLS["titok"].to_uint8(x, "sample").flatten().tolist()    # clamp, truncate
            [127, 254, 255]
            >>> PROTOCOLS["clean"].to_uint8(x, "sample").flatten().tolist()    # clamp, round
            [128, 255, 255]
        """
        rule = {"real": self.real_uint8, "reconstruction": self.reconstruction_uint8, "sample": self.sample_uint8}
        if kind not in rule:
            raise ValueError(f"kind must be 'real', 'reconstruction' or 'sample', got {kind!r}")
        return quantize(images, rule[kind])

    # ---- integers -> Inception input -----------------------------------------------------------------------
    def inception_input(self, images: torch.Tensor, size: int = 299) -> torch.Tensor:
        """``uint8`` ``(B, 3, H, W)`` -> what the feature part reads.

        ``tf1-bilinear`` hands the integers on (the network resizes them as the TF
        graph did); ``pil-bicubic`` resizes each channel as a float image with PIL
        and clips to [0, 255] (clean-fid), giving float32 ``(B, 3, size, size)``.
        """
        if self.inception_resize == "tf1-bilinear" or tuple(images.shape[-2:]) == (size, size):
            return images
        return pil_bicubic_resize(images, size)

    def feature_part(self, weights: str | None = None):
        """The [`Part`][tokenkit.specs.Part] of the Inception feature network with this protocol's arithmetic."""
        return Part("inception-v3-fid", weights=weights, dtype=self.feature_dtype)


def quantize(images: torch.Tensor, rule: Rounding) -> torch.Tensor:
    """``[0, 1]`` floats -> ``uint8`` by ``rule`` (clamped first).

    ``round-truncate`` is the official TiTok evaluator's ``round(x * 255) / 255``
    followed by ``(x * 255).to(uint8)``, in the input's float arithmetic (a value
    that rounds to ``k / 255`` can come back as ``k - 1``).
    """
    if not images.is_floating_point():
        raise ValueError(f"quantize needs float images in [0, 1], got {images.dtype}")
    x = images.clamp(0.0, 1.0)
    if rule == "round":
        return (x * 255).round().to(torch.uint8)
    if rule == "round-truncate":
        x = torch.round(x * 255.0) / 255.0
    elif rule != "truncate":
        raise ValueError(f"unknown rounding rule {rule!r}")
    return (x * 255).to(torch.uint8)


def adm_center_crop(image: Image.Image, size: int) -> Image.Image:
    """guided-diffusion's ``center_crop_arr``: BOX halvings while the short side is >= 2 * size,
    bicubic resize of the short side to ``size`` (sides rounded), centre crop (floor offsets)."""
    while min(*image.size) >= 2 * size:
        image = image.resize(tuple(x // 2 for x in image.size), resample=Image.BOX)
    scale = size / min(*image.size)
    image = image.resize(tuple(round(x * scale) for x in image.size), resample=Image.BICUBIC)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def pil_bicubic_resize(images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """clean-fid's resize: each channel as a PIL float (``F``) image, bicubic to ``size``, clipped to [0, 255]."""
    arrays = images.detach().cpu().numpy().astype(np.float32)
    out = np.empty((arrays.shape[0], 3, size, size), dtype=np.float32)
    for i, image in enumerate(arrays):
        for c in range(image.shape[0]):
            resized = Image.fromarray(image[c], mode="F").resize((size, size), resample=Image.BICUBIC)
            out[i, c] = np.asarray(resized).clip(0, 255)
    return torch.from_numpy(out)


PROTOCOLS: dict[str, Protocol] = {
    "titok": Protocol(
        name="titok", summary="official TiTok evaluator (bytedance/1d-tokenizer evaluator/evaluator.py)",
        crop="resize-center-crop", real_uint8="truncate", reconstruction_uint8="round-truncate",
        sample_uint8="truncate", inception_resize="tf1-bilinear", feature_dtype="float64", is_split_size=None,
        is_eps=1e-16, generation="adm"),
    "adm": Protocol(
        name="adm", summary="guided-diffusion evaluation suite (openai/guided-diffusion evaluations/evaluator.py)",
        crop="adm-center-crop", real_uint8="round", reconstruction_uint8="truncate", sample_uint8="truncate",
        inception_resize="tf1-bilinear", feature_dtype="float32", is_split_size=5000, is_eps=0.0),
    "clean": Protocol(
        name="clean", summary="clean-fid 'clean' mode (GaParmar/clean-fid): PIL bicubic resize to 299",
        crop="resize-center-crop", real_uint8="round", reconstruction_uint8="round", sample_uint8="round",
        inception_resize="pil-bicubic", feature_dtype="float32", is_split_size=5000, is_eps=0.0),
}
"""The protocol presets by name."""


def get_protocol(protocol: str | Protocol) -> Protocol:
    """A preset by name (or the protocol itself).

    Raises:
        ConfigError: Unknown name (the presets are listed).
    """
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {protocol!r}; presets: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]
