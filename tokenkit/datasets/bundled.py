"""The six bundled images ([`tokenkit.data`][tokenkit.data]) as a dataset of random crops, for demos and tests."""

from __future__ import annotations

import dataclasses
import functools
import random

import torch
from torch.utils.data import Dataset

from tokenkit import data
from tokenkit.datasets.base import AugmentingDataset, item_generator, sequence_index
from tokenkit.registry import register
from tokenkit.validation import image_shape


@functools.cache
def _image(name: str) -> torch.Tensor:
    return data.load_image(name)


@dataclasses.dataclass(frozen=True)
class BundledConfig:
    """Options of the ``bundled`` dataset.

    Raises:
        ValueError: A non-positive count or size, ``resize`` below ``size``, or an unknown image name.

    Examples:
        >>> config = BundledConfig(crops_per_epoch=4, size=16, names=["astronaut", "coffee"])
        >>> ds = Bundled(config)  # as tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=4, ...))
        >>> [ds[i]["key"] for i in range(len(ds))], ds[1]["label"]
        (['astronaut/0/0', 'coffee/0/1', 'astronaut/0/2', 'coffee/0/3'], 1)
        >>> BundledConfig(names=["moon"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: no bundled image(s) moon; available: astronaut, chelsea, ...
    """

    crops_per_epoch: int = 64
    """Items per epoch; item ``i`` is a crop of image ``i % len(names)``."""
    size: int | tuple[int, int] = 32
    """Crop side, or ``(H, W)``."""
    resize: int | None = None
    """Resize the shorter side to this first (default: ``size``; use 256 for detail crops)."""
    flip: bool = False
    """Random horizontal flip in training mode."""
    names: tuple[str, ...] = ()
    """Which bundled images (default: all six, sorted); the label is the position in this list."""
    seed: int = 0
    """Seed of the crops (combined with the epoch and the item index)."""
    captions: bool = False
    """Items also carry ``"text"``: one of the image's captions ([`tokenkit.data.captions`][tokenkit.data.captions]),
    drawn from a generator seeded like the crops (by seed, epoch and item index; in both modes the same)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", (self.names,) if isinstance(self.names, str) else tuple(self.names))
        if isinstance(self.size, list):
            object.__setattr__(self, "size", tuple(self.size))
        height, width = image_shape(self.size, "size")
        if self.crops_per_epoch < 1:
            raise ValueError(f"crops_per_epoch must be positive, got {self.crops_per_epoch}")
        if self.resize is not None and self.resize < min(height, width):
            raise ValueError(f"resize ({self.resize}) must be at least the shorter side of size ({self.size})")
        unknown = sorted(set(self.names) - set(data.image_names()))
        if unknown:
            raise ValueError(f"no bundled image(s) {', '.join(unknown)}; available: {', '.join(data.image_names())}")

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> BundledConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        size = rng.choice([4, 8, 16])
        return cls(crops_per_epoch=rng.randint(1, 8), size=size, resize=rng.choice([None, 2 * size]),
                   flip=rng.random() < 0.5, seed=rng.randint(0, 99), captions=rng.random() < 0.5)


@register("dataset", "bundled")
class Bundled(AugmentingDataset, Dataset):
    """Random square crops of the bundled CC0 / public-domain photographs.

    Deterministic given ``seed`` and the epoch (``set_epoch``): a resumed training
    run sees the same crops; each epoch draws new ones. In eval mode crops are centred.
    With ``captions=True`` an item also carries ``"text"``, one of the image's three
    captions (drawn like the crop; a ``DataLoader`` batches them into a list of strings),
    for text-aware tokenizers (TA-TiTok) and text-conditioned generators (MaskGen).

    Args:
        config: [`BundledConfig`][tokenkit.datasets.bundled.BundledConfig].

    Examples:
        >>> import tokenkit as tk
        >>> ds = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=12, size=16))
        >>> item = ds[1]
        >>> len(ds), tuple(item["image"].shape), item["label"], item["key"]
        (12, (3, 16, 16), 1, 'chelsea/0/1')
        >>> captioned = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=12, size=16, captions=True))
        >>> captioned[1]["text"] in tk.data.captions("chelsea"), captioned[1]["text"] == captioned[1]["text"]
        (True, True)
    """

    Config = BundledConfig

    def __init__(self, config: BundledConfig) -> None:
        self.config = config
        self.names = list(config.names or data.image_names())
        self._transforms(config.size, True, config.flip, config.resize)

    def __len__(self) -> int:
        return self.config.crops_per_epoch

    def __getitem__(self, index: int) -> dict:
        index = sequence_index(index, len(self), "crops")
        label = index % len(self.names)
        name = self.names[label]
        generator = item_generator(self.config.seed, self.epoch, index)
        image = self.transform(_image(name), generator)
        item = {"image": image, "label": label, "key": f"{name}/{self.epoch}/{index}"}
        if self.config.captions:
            texts = data.captions(name)
            caption_generator = item_generator(self.config.seed, self.epoch, index, "text")
            item["text"] = texts[int(torch.randint(0, len(texts), (1,), generator=caption_generator))]
        return item
