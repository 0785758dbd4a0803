"""A folder of images, optionally labelled by sub-folder (ImageNet-style ``root/class_x/xxx.png``)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
from torch.utils.data import Dataset

from tokenkit.datasets.base import (
    AugmentingDataset,
    OnError,
    check_on_error,
    item_generator,
    sequence_index,
    warn_skip,
)
from tokenkit.datasets.transforms import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    decode_image,
)
from tokenkit.errors import ConfigError
from tokenkit.registry import register
from tokenkit.validation import image_shape


@dataclasses.dataclass(frozen=True)
class ImageFolderConfig:
    """Options of the ``image-folder`` dataset.

    Raises:
        ValueError: A non-positive ``size`` or an unknown ``on_error``.

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> ImageFolderConfig(root="data/train", size=128, extensions=[".PNG", "jpg"]).extensions  # normalised
        ('png', 'jpg')
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     config = ImageFolderConfig.example(tmp)  # writes 3 tiny PNGs in cat/ and dog/
        ...     ds = tk.build_part("dataset", tk.Part("image-folder", root=config.root, size=8, labels=True))
        ...     [ds[i]["key"] for i in range(len(ds))], ds.classes
        (['cat/000', 'cat/001', 'dog/002'], ['cat', 'dog'])
    """

    root: str = ""
    """Folder searched recursively for images (required)."""
    size: int | tuple[int, int] = 256
    """Output side (the official 256), or ``(H, W)``."""
    random_crop: bool = True
    """Random crop in training mode (else a centre crop)."""
    flip: bool = True
    """Random horizontal flip in training mode."""
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS
    """File extensions read (case-insensitive, no dot)."""
    labels: bool = False
    """Label by the top-level sub-folder (classes sorted by name); else every label is -1."""
    seed: int = 0
    """Seed of the augmentation draws (combined with the epoch and the item index)."""
    on_error: OnError = "raise"
    """A corrupt file raises (naming it), or with ``"skip"`` is skipped with a warning."""

    def __post_init__(self) -> None:
        if isinstance(self.extensions, str):
            object.__setattr__(self, "extensions", (self.extensions,))
        object.__setattr__(self, "extensions", tuple(e.lower().lstrip(".") for e in self.extensions))
        if isinstance(self.size, list):
            object.__setattr__(self, "size", tuple(self.size))
        image_shape(self.size, "size")
        check_on_error(self.on_error)

    @classmethod
    def example(cls, directory: str | os.PathLike, **options) -> ImageFolderConfig:
        """Write a tiny labelled image folder (2 classes, 3 PNGs of odd sizes) into ``directory``; its config."""
        from PIL import Image

        gen = torch.Generator().manual_seed(0)
        for i, (cls_name, w, h) in enumerate([("cat", 12, 9), ("cat", 9, 10), ("dog", 10, 14)]):
            folder = Path(directory) / cls_name
            folder.mkdir(parents=True, exist_ok=True)
            pixels = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
        return cls(**{"root": str(directory), "size": 8, "labels": True, **options})


@register("dataset", "image-folder")
class ImageFolder(AugmentingDataset, Dataset):
    """Map-style dataset of the images under ``root``, sorted by relative path.

    Items are ``{"image": (3, size, size) float in [0, 1], "label": int, "key": str}``
    with ``key`` the relative path without extension. Augmentation is seeded by
    ``(seed, epoch, index)``, so it is reproducible whatever the worker split.

    Args:
        config: [`ImageFolderConfig`][tokenkit.datasets.image_folder.ImageFolderConfig].

    Raises:
        ConfigError: ``root`` is missing or holds no images; with ``labels``, an
            image directly in ``root`` (it has no class).

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> from tokenkit.datasets.image_folder import ImageFolder, ImageFolderConfig
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ds = ImageFolder(ImageFolderConfig.example(tmp))
        ...     item = ds[2]
        >>> ds.classes, item["label"], item["key"], tuple(item["image"].shape)
        (['cat', 'dog'], 1, 'dog/002', (3, 8, 8))
    """

    Config = ImageFolderConfig

    def __init__(self, config: ImageFolderConfig) -> None:
        self.config = config
        self._transforms(config.size, config.random_crop, config.flip)
        self.samples: list[tuple[Path, int]] = []
        self.classes: list[str] = []
        if config.root:  # an unset root (the default config) builds an empty placeholder
            self._scan(Path(config.root))

    def _scan(self, root: Path) -> None:
        if not root.is_dir():
            raise ConfigError(f"image-folder root {str(root)!r} is not a directory")
        exts = set(self.config.extensions)
        files = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in exts),
                       key=lambda p: p.relative_to(root).as_posix())
        if not files:
            raise ConfigError(f"no images with extensions {', '.join(sorted(exts))} under {str(root)!r}")
        if self.config.labels:
            self.classes = sorted({p.relative_to(root).parts[0] for p in files if len(p.relative_to(root).parts) > 1})
            loose = [p for p in files if len(p.relative_to(root).parts) == 1]
            if loose:
                raise ConfigError(
                    f"labels=True but {str(loose[0])!r} is not inside a class sub-folder of {str(root)!r}"
                )
            index = {name: i for i, name in enumerate(self.classes)}
            self.samples = [(p, index[p.relative_to(root).parts[0]]) for p in files]
        else:
            self.samples = [(p, -1) for p in files]
        self._root = root

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        if not self.samples:
            raise ConfigError("image-folder has no root configured (set `root`)")
        index = sequence_index(index, len(self), "images")
        for attempt in range(len(self.samples)):
            path, label = self.samples[(index + attempt) % len(self.samples)]
            try:
                image = decode_image(path)
                break
            except ImageDecodeError as err:
                if self.config.on_error == "raise":
                    raise
                warn_skip(err)  # deterministic fallback: the next readable file
        else:
            raise ImageDecodeError(f"no readable image under {str(self._root)!r}")
        generator = item_generator(self.config.seed, self.epoch, index)
        key = path.relative_to(self._root).with_suffix("").as_posix()
        return {"image": self.transform(image, generator), "label": label, "key": key}
