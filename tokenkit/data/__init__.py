"""Small bundled data: real CC0 / public-domain photographs for demos and tests, with short captions (CC0).

Examples:
    >>> import tokenkit as tk
    >>> print(tk.data.image_names()[:2])
    ['astronaut', 'chelsea']
    >>> tk.data.sample_images(32, per_image=2, seed=0).shape
    torch.Size([12, 3, 32, 32])
    >>> tk.data.captions("coffee")[0]
    'a cup of espresso on a red saucer'
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import torch

from tokenkit.errors import ConfigError

_IMAGES = resources.files(__package__) / "images"


def image_names() -> list[str]:
    """Names of the bundled images (see ``tokenkit/data/images/README.md`` for sources and terms).

    Examples:
        >>> import tokenkit as tk
        >>> tk.data.image_names()
        ['astronaut', 'chelsea', 'coffee', 'hubble_deep_field', 'retina', 'rocket']
    """
    return sorted(p.name.rsplit(".", 1)[0] for p in _IMAGES.iterdir() if p.name.endswith(".jpg"))


@functools.cache
def _captions() -> dict[str, tuple[str, ...]]:
    with (_IMAGES / "captions.json").open("r", encoding="utf-8") as f:
        return {name: tuple(texts) for name, texts in json.load(f).items()}


def captions(name: str) -> list[str]:
    """The short captions of a bundled image (three each; written for tokenkit, CC0, see
    ``tokenkit/data/images/README.md``).

    Raises:
        ConfigError: Unknown name (the known names are listed).

    Examples:
        >>> import tokenkit as tk
        >>> for caption in tk.data.captions("rocket"):
        ...     print(caption)
        a rocket on the launch pad at dusk
        a white rocket between lightning towers under a dark blue sky
        a launch pad with bright lights at night, a rocket ready for launch
        >>> all(len(tk.data.captions(name)) == 3 for name in tk.data.image_names())
        True
        >>> tk.data.captions("moon")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: no bundled image 'moon'; available: astronaut, chelsea, ...
    """
    texts = _captions().get(name)
    if texts is None:
        raise ConfigError(f"no bundled image {name!r}; available: {', '.join(image_names())}")
    return list(texts)


def load_image(name: str) -> torch.Tensor:
    """One bundled image as ``(3, H, W)`` float in [0, 1] (shorter side 256).

    Raises:
        ConfigError: Unknown name (the known names are listed).

    Examples:
        >>> import tokenkit as tk
        >>> image = tk.data.load_image("chelsea")
        >>> image.shape, image.dtype, 0 <= float(image.min()) <= float(image.max()) <= 1
        (torch.Size([3, 256, 385]), torch.float32, True)
        >>> tk.data.load_image("moon")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: no bundled image 'moon'; available: astronaut, chelsea, ...
    """
    import numpy as np
    from PIL import Image

    if name not in image_names():
        raise ConfigError(f"no bundled image {name!r}; available: {', '.join(image_names())}")
    with (_IMAGES / f"{name}.jpg").open("rb") as f:
        array = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def sample_images(size: int = 256, *, per_image: int = 1, resize: int | None = None, names: list[str] | None = None,
                  seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random square crops of the bundled images, as a batch.

    Args:
        size: Crop side.
        per_image: Crops taken from each image.
        resize: Resize the shorter side to this first (default: ``size``, so a crop
            covers most of the picture; use 256 for detail crops).
        names: Which images (default: all).
        seed: Seed of a fresh generator (ignored when ``generator`` is given).
        generator: Random generator of the crop positions.

    Returns:
        ``(len(names) * per_image, 3, size, size)`` float in [0, 1].

    Raises:
        ConfigError: A non-positive ``size`` or ``per_image``, or ``resize`` below ``size``.

    Examples:
        >>> import torch, tokenkit as tk
        >>> tk.data.sample_images(32, seed=0).shape  # one crop of each of the six images
        torch.Size([6, 3, 32, 32])
        >>> tk.data.sample_images(16, per_image=3, names=["rocket"], resize=256, seed=1).shape  # detail crops
        torch.Size([3, 3, 16, 16])
        >>> torch.equal(tk.data.sample_images(32, seed=0), tk.data.sample_images(32, seed=0))
        True
    """
    import torch.nn.functional as F

    if size < 1 or per_image < 1:
        raise ConfigError(f"size and per_image must be positive, got {size} and {per_image}")
    resize = resize or size
    if resize < size:
        raise ConfigError(f"resize ({resize}) must be at least the crop size ({size})")
    if generator is None:
        generator = torch.Generator().manual_seed(0 if seed is None else seed)
    crops = []
    for name in names or image_names():
        image = load_image(name)
        h, w = image.shape[-2:]
        scale = resize / min(h, w)
        image = F.interpolate(image[None], size=(max(resize, round(h * scale)), max(resize, round(w * scale))),
                              mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
        h, w = image.shape[-2:]
        for _ in range(per_image):
            top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
            crops.append(image[:, top : top + size, left : left + size])
    return torch.stack(crops)
