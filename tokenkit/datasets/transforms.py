"""The official TiTok preprocessing (TITOK_SPEC §6.5) as plain, seedable functions.

Train: resize the shorter edge (bicubic, antialiased) -> random crop (or centre
crop) -> random horizontal flip -> tensor in [0, 1]. Eval: resize -> centre
crop. The arithmetic follows torchvision's ``Resize``/``RandomCrop``/
``CenterCrop``/``RandomHorizontalFlip`` on PIL images, but every random choice
is drawn from an explicit ``torch.Generator`` so a data pipeline can be
replayed exactly.

Decoding keeps Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``
is never touched, unlike the official reader, TITOK_SPEC §7.4 item 28): an
oversized image is an [`ImageDecodeError`][tokenkit.datasets.transforms.ImageDecodeError]
like any corrupt file.

Example:
    >>> import torch
    >>> from PIL import Image
    >>> from tokenkit.datasets.transforms import train_transform
    >>> t = train_transform(16)
    >>> t(Image.new("RGB", (40, 20)), generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 16, 16])
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tokenkit.errors import TokenkitError

IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
"""Image file extensions (lowercase, no dot) the datasets read, as in the official shards."""


class ImageDecodeError(TokenkitError):
    """An image file is corrupt, truncated, not an image, or over Pillow's pixel limit."""


def decode_image(source: bytes | str | os.PathLike, name: str | None = None) -> Image.Image:
    """Decode an image file (path or bytes) to an RGB PIL image.

    Args:
        source: A path, or the encoded bytes.
        name: What to call the file in an error (default: the path).

    Raises:
        ImageDecodeError: Naming the file, for corrupt data or a decompression
            bomb (Pillow's ``MAX_IMAGE_PIXELS`` guard stays active).
    """
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return image.convert("RGB")  # forces the full decode inside the try
    except Image.DecompressionBombError as err:
        raise ImageDecodeError(f"refusing to decode {name}: {err}") from err
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as err:
        raise ImageDecodeError(f"cannot decode image {name}: {err}") from err


def resize_shorter(image: Image.Image | torch.Tensor, size: int) -> Image.Image | torch.Tensor:
    """Resize so the shorter edge is ``size`` (bicubic, antialiased; aspect kept as torchvision does).

    A PIL image is resized by Pillow (what torchvision's ``Resize`` does on PIL
    input); a ``(3, H, W)`` tensor by ``F.interpolate(..., antialias=True)``,
    clamped to [0, 1].
    """
    w, h = image.size if isinstance(image, Image.Image) else (image.shape[-1], image.shape[-2])
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return image
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if isinstance(image, Image.Image):
        return image.resize((new_w, new_h), Image.BICUBIC)
    out = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    return out[0].clamp(0, 1)


def crop_box(height: int, width: int, size: int, random: bool, generator: torch.Generator | None) -> tuple[int, int]:
    """Top-left corner of a ``size`` square: uniform (``random``) or centred (torchvision's rounding)."""
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from a {height}x{width} image")
    if random:
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        return top, left
    return round((height - size) / 2.0), round((width - size) / 2.0)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``(3, H, W)`` float32 in [0, 1] (as ``torchvision.transforms.ToTensor``)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class Transform:
    """Resize shorter edge -> crop -> optional flip -> ``(3, size, size)`` float in [0, 1].

    Call it on a PIL image or a ``(3, H, W)`` tensor in [0, 1] with an optional
    ``generator`` (the crop position is drawn first, then the flip).
    """

    size: int
    """Output side; the shorter edge is resized to ``resize`` (default: ``size``) first."""
    random_crop: bool = True
    """Random crop (train) or centre crop (eval)."""
    flip: bool = True
    """Flip horizontally with probability 0.5."""
    resize: int | None = None
    """Shorter edge before cropping (default: ``size``, as the official 256 -> 256)."""

    def __post_init__(self) -> None:
        if self.size < 1 or (self.resize is not None and self.resize < self.size):
            raise ValueError(f"need 1 <= size <= resize, got size={self.size}, resize={self.resize}")

    def __call__(self, image: Image.Image | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        image = resize_shorter(image, self.resize or self.size)
        w, h = image.size if isinstance(image, Image.Image) else (image.shape[-1], image.shape[-2])
        top, left = crop_box(h, w, self.size, self.random_crop, generator)
        if isinstance(image, Image.Image):
            image = to_tensor(image.crop((left, top, left + self.size, top + self.size)))
        else:
            image = image[:, top : top + self.size, left : left + self.size].float()
        if self.flip and bool(torch.rand(1, generator=generator) < 0.5):
            image = image.flip(-1)
        return image.contiguous()


def train_transform(size: int, random_crop: bool = True, flip: bool = True, resize: int | None = None) -> Transform:
    """The official training transform: resize -> random (or centre) crop -> random flip -> [0, 1]."""
    return Transform(size, random_crop=random_crop, flip=flip, resize=resize)


def eval_transform(size: int, resize: int | None = None) -> Transform:
    """The official evaluation transform: resize -> centre crop -> [0, 1]; deterministic."""
    return Transform(size, random_crop=False, flip=False, resize=resize)
