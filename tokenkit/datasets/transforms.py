"""The official TiTok preprocessing as plain, seedable functions.

Official: ``ImageTransform``, ``data/webdataset_reader.py`` L76-125.

Train: resize the shorter edge (bicubic, antialiased) -> random crop (or centre
crop) -> random horizontal flip -> tensor in [0, 1]. Eval: resize -> centre
crop. The arithmetic follows torchvision's ``Resize``/``RandomCrop``/
``CenterCrop``/``RandomHorizontalFlip`` on PIL images, but every random choice
is drawn from an explicit ``torch.Generator`` so a data pipeline can be
replayed exactly.

Decoding keeps Pillow's decompression-bomb guard (``PIL.Image.MAX_IMAGE_PIXELS``
is never touched, unlike the official reader, which sets it to ``None`` at import in
``data/webdataset_reader.py`` L25): an
oversized image is an [`ImageDecodeError`][tokenkit.datasets.transforms.ImageDecodeError]
like any corrupt file. 16-bit and float images are scaled to 8 bit (see
[`to_8bit`][tokenkit.datasets.transforms.to_8bit]) instead of being clipped to white.

Examples:
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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tokenkit.errors import TokenkitError
from tokenkit.validation import image_shape

IMAGE_EXTENSIONS: tuple[str, ...] = ("jpg", "jpeg", "png", "webp")
"""Image file extensions (lowercase, no dot) the datasets read, as in the official shards."""


class ImageDecodeError(TokenkitError):
    """An image file is corrupt, truncated, not an image, or over Pillow's pixel limit.

    A [`TokenkitError`][tokenkit.errors.TokenkitError] (and a ``ValueError``); the message names the file.

    Examples:
        >>> import tokenkit as tk
        >>> try:
        ...     decode_image(b"not an image", name="broken.png")
        ... except ImageDecodeError as err:
        ...     print(str(err).split(":")[0], isinstance(err, tk.TokenkitError), isinstance(err, ValueError))
        cannot decode image broken.png True True
    """


HIGH_DEPTH_MODES: tuple[str, ...] = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
"""Pillow modes with more than 8 bits per sample, which [`to_8bit`][tokenkit.datasets.transforms.to_8bit] scales."""


def to_8bit(image: Image.Image) -> Image.Image:
    """Scale a 16-bit or float single-channel image to an 8-bit ``L`` image; other modes are returned as they are.

    Pillow's own ``convert("L")`` / ``convert("RGB")`` clips these modes to [0, 255]
    instead of scaling, so a mid-grey 16-bit PNG (32768) would come out white.

    * ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (16-bit PNG, TIFF, PGM) and ``I`` (32-bit
      integers; read as 16-bit data, values outside [0, 65535] clipped):
      ``round(value / 257)``, so 65535 -> 255 and 32768 -> 128.
    * ``F`` (32-bit float): taken as intensities in [0, 1] when every value lies there
      (``round(255 * value)``); otherwise on Pillow's 0-255 scale, clipped. NaN -> 0.

    Examples:
        >>> import numpy as np
        >>> from PIL import Image
        >>> from tokenkit.datasets.transforms import to_8bit
        >>> grey = Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16))
        >>> grey.mode, grey.convert("L").getpixel((0, 0)), to_8bit(grey).getpixel((0, 0))
        ('I;16', 255, 128)
    """
    if image.mode not in HIGH_DEPTH_MODES:
        return image
    array = np.asarray(image)
    if image.mode == "F":
        array = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if array.size and array.min() >= 0.0 and array.max() <= 1.0:
            array = array * 255.0
    else:
        array = np.clip(array.astype(np.float64), 0, 65535) / 257.0
    return Image.fromarray(np.clip(np.rint(array), 0, 255).astype(np.uint8))  # 2-D uint8: mode L


ALPHA_MODES: tuple[str, ...] = ("RGBA", "RGBa", "LA", "La", "PA")
"""Pillow modes with an alpha channel, which [`flatten_alpha`][tokenkit.datasets.transforms.flatten_alpha] composites."""


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite an image with transparency over white (an ``RGB`` result); others are returned as they are.

    Transparency is an alpha channel (``RGBA``, ``LA``, ``PA``, ...) or a transparent palette or
    grey colour (``info["transparency"]``). Dropping the alpha instead would show the colours stored
    under fully transparent pixels, which are arbitrary (often black, or an editor's left-overs).

    Examples:
        >>> from PIL import Image
        >>> flatten_alpha(Image.new("LA", (1, 1), (0, 128))).getpixel((0, 0))  # half-transparent black
        (127, 127, 127)
    """
    if image.mode not in ALPHA_MODES and "transparency" not in image.info:
        return image
    rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def decode_image(source: bytes | str | os.PathLike, name: str | None = None, *, exif: bool = False) -> Image.Image:
    """Decode an image file (path or bytes) to an RGB PIL image.

    8-bit images are converted with ``convert("RGB")`` as the official reader does
    (grey and palette expanded, CMYK through Pillow's conversion); 16-bit and float images
    are scaled to 8 bit first ([`to_8bit`][tokenkit.datasets.transforms.to_8bit]), and images
    with transparency are composited over white
    ([`flatten_alpha`][tokenkit.datasets.transforms.flatten_alpha]; the official reader drops
    the alpha channel, which only differs for such images: ImageNet has none).

    Args:
        source: A path, or the encoded bytes.
        name: What to call the file in an error (default: the path).
        exif: Apply the EXIF orientation (``PIL.ImageOps.exif_transpose``). Off by default,
            as in the official reader, so the official ImageNet numbers are unchanged.

    Raises:
        ImageDecodeError: Naming the file, for corrupt data or a decompression
            bomb (Pillow's ``MAX_IMAGE_PIXELS`` guard stays active).

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("LA", (40, 20), (0, 255)).save(buffer, format="PNG")  # grey with alpha
        >>> image = decode_image(buffer.getvalue())
        >>> image.mode, image.size
        ('RGB', (40, 20))
        >>> decode_image(b"not an image", name="broken.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.datasets.transforms.ImageDecodeError: cannot decode image broken.png: cannot identify image file ...
    """
    return decode_with(source, lambda image: flatten_alpha(to_8bit(_orient(image, exif))).convert("RGB"), name)


def _orient(image: Image.Image, exif: bool) -> Image.Image:
    from PIL import ImageOps

    return ImageOps.exif_transpose(image) if exif else image


def decode_with(source: bytes | str | os.PathLike, convert: Callable[[Image.Image], Image.Image],
                name: str | None = None) -> Image.Image:
    """Open an image file (path or bytes) and return ``convert(image)``, fully decoded.

    Pillow's errors (corrupt, truncated or non-image data, a missing file, a decompression
    bomb) become an [`ImageDecodeError`][tokenkit.datasets.transforms.ImageDecodeError]
    naming the file (``name``, default: the path).

    Examples:
        >>> import io
        >>> from PIL import Image
        >>> buffer = io.BytesIO()
        >>> Image.new("RGB", (4, 2), (255, 0, 0)).save(buffer, format="PNG")
        >>> decode_with(buffer.getvalue(), lambda image: image.convert("L")).mode
        'L'
    """
    name = name or (str(source) if not isinstance(source, bytes) else "<bytes>")
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            out = convert(image)
            out.load()  # forces the full decode inside the try
            return out
    except Image.DecompressionBombError as err:
        raise ImageDecodeError(f"refusing to decode {name}: {err}") from err
    except (OSError, SyntaxError, ValueError, Image.UnidentifiedImageError) as err:
        raise ImageDecodeError(f"cannot decode image {name}: {err}") from err


def resize_shorter(image: Image.Image | torch.Tensor, size: int) -> Image.Image | torch.Tensor:
    """Resize so the shorter edge is ``size`` (bicubic, antialiased; aspect kept as torchvision does).

    A PIL image is resized by Pillow (what torchvision's ``Resize`` does on PIL
    input); a ``(3, H, W)`` tensor by ``F.interpolate(..., antialias=True)``,
    clamped to [0, 1].

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> resize_shorter(Image.new("RGB", (40, 20)), 10).size  # (width, height)
        (20, 10)
        >>> resize_shorter(torch.rand(3, 20, 40), 10).shape
        torch.Size([3, 10, 20])
    """
    w, h = image.size if isinstance(image, Image.Image) else (image.shape[-1], image.shape[-2])
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return image
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    return _resize(image, new_w, new_h)


def _resize(image: Image.Image | torch.Tensor, new_w: int, new_h: int) -> Image.Image | torch.Tensor:
    if isinstance(image, Image.Image):
        return image.resize((new_w, new_h), Image.BICUBIC)
    out = F.interpolate(image[None].float(), size=(new_h, new_w), mode="bicubic", antialias=True, align_corners=False)
    return out[0].clamp(0, 1)


def resize_cover(image: Image.Image | torch.Tensor, size: int | tuple[int, int]) -> Image.Image | torch.Tensor:
    """Resize (aspect kept) to the smallest size that covers ``size`` = ``(H, W)`` (an int: a square).

    The side that binds is resized to its target and the other one follows (rounded down, as
    torchvision's ``Resize``), so a crop of ``(H, W)`` fits. For a square ``size`` this is
    [`resize_shorter`][tokenkit.datasets.transforms.resize_shorter] exactly.

    Examples:
        >>> from PIL import Image
        >>> resize_cover(Image.new("RGB", (40, 20)), (10, 30)).size  # (width, height): the width binds
        (30, 15)
        >>> resize_cover(Image.new("RGB", (40, 20)), (16, 24)).size  # the height binds
        (32, 16)
        >>> resize_cover(Image.new("RGB", (40, 20)), 10).size == resize_shorter(Image.new("RGB", (40, 20)), 10).size
        True
    """
    height, width = image_shape(size, "size")
    if height == width:
        return resize_shorter(image, height)
    w, h = image.size if isinstance(image, Image.Image) else (image.shape[-1], image.shape[-2])
    if w * height >= h * width:  # relatively wider than the target: the height binds
        new_w, new_h = max(width, int(height * w / h)), height
    else:
        new_w, new_h = width, max(height, int(width * h / w))
    return image if (new_w, new_h) == (w, h) else _resize(image, new_w, new_h)


def crop_box(height: int, width: int, size: int | tuple[int, int], random: bool,
             generator: torch.Generator | None) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop (a side, or ``(H, W)``): uniform (``random``) or centred
    (torchvision's rounding).

    Raises:
        ValueError: The image is smaller than ``size``.

    Examples:
        >>> import torch
        >>> crop_box(20, 40, 16, random=False, generator=None)  # (top, left) of the centre crop
        (2, 12)
        >>> crop_box(20, 40, (16, 24), random=False, generator=None)
        (2, 8)
        >>> top, left = crop_box(20, 40, 16, random=True, generator=torch.Generator().manual_seed(0))
        >>> 0 <= top <= 4 and 0 <= left <= 24
        True
        >>> crop_box(20, 40, 16, True, torch.Generator().manual_seed(0)) == (top, left)  # same seed, same crop
        True
    """
    crop_h, crop_w = image_shape(size, "size")
    if height < crop_h or width < crop_w:
        raise ValueError(f"cannot crop {crop_h}x{crop_w} from a {height}x{width} image")
    if random:
        top = int(torch.randint(0, height - crop_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - crop_w + 1, (1,), generator=generator))
        return top, left
    return round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``(3, H, W)`` float32 in [0, 1] (as ``torchvision.transforms.ToTensor``).

    Examples:
        >>> from PIL import Image
        >>> tensor = to_tensor(Image.new("RGB", (4, 2), (255, 0, 0)))
        >>> tensor.shape, tensor.dtype, tensor[:, 0, 0].tolist()
        (torch.Size([3, 2, 4]), torch.float32, [1.0, 0.0, 0.0])
    """
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class Transform:
    """Resize -> crop -> optional flip -> ``(3, size, size)`` (or ``(3, H, W)``) float in [0, 1].

    Call it on a PIL image or a ``(3, H, W)`` tensor in [0, 1] with an optional
    ``generator`` (the crop position is drawn first, then the flip).

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> transform = Transform(16, resize=32)
        >>> transform(Image.new("RGB", (60, 40)), generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 16, 16])
        >>> transform(torch.rand(3, 40, 60)).shape  # a tensor in [0, 1] works too
        torch.Size([3, 16, 16])
        >>> Transform((16, 24), random_crop=False, flip=False)(Image.new("RGB", (60, 40))).shape  # (H, W)
        torch.Size([3, 16, 24])
    """

    size: int | tuple[int, int]
    """Output side (square), or ``(H, W)``. First the image is resized: its shorter edge to ``resize``
    if set, else (aspect kept) to the smallest size covering ``size`` (for a square: the shorter edge
    to ``size``)."""
    random_crop: bool = True
    """Random crop (train) or centre crop (eval)."""
    flip: bool = True
    """Flip horizontally with probability 0.5."""
    resize: int | None = None
    """Shorter edge before cropping (default: ``size``, as the official 256 -> 256)."""

    def __post_init__(self) -> None:
        if isinstance(self.size, list):
            object.__setattr__(self, "size", tuple(self.size))
        short = min(image_shape(self.size, "size"))
        if self.resize is not None and self.resize < short:
            raise ValueError(f"need 1 <= size <= resize, got size={self.size}, resize={self.resize}")

    def __call__(self, image: Image.Image | torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        image = resize_cover(image, self.size) if self.resize is None else resize_shorter(image, self.resize)
        w, h = image.size if isinstance(image, Image.Image) else (image.shape[-1], image.shape[-2])
        top, left = crop_box(h, w, self.size, self.random_crop, generator)
        crop_h, crop_w = image_shape(self.size, "size")
        if isinstance(image, Image.Image):
            image = to_tensor(image.crop((left, top, left + crop_w, top + crop_h)))
        else:
            image = image[:, top : top + crop_h, left : left + crop_w].float()
        if self.flip and bool(torch.rand(1, generator=generator) < 0.5):
            image = image.flip(-1)
        return image.contiguous()


def train_transform(size: int | tuple[int, int], random_crop: bool = True, flip: bool = True, resize: int | None = None) -> Transform:
    """The official training transform: resize -> random (or centre) crop -> random flip -> [0, 1].

    Examples:
        >>> import torch
        >>> from PIL import Image
        >>> transform = train_transform(16)
        >>> transform
        Transform(size=16, random_crop=True, flip=True, resize=None)
        >>> image = Image.new("RGB", (40, 20))
        >>> a = transform(image, generator=torch.Generator().manual_seed(3))
        >>> b = transform(image, generator=torch.Generator().manual_seed(3))
        >>> a.shape, torch.equal(a, b)  # the seed fixes crop and flip
        (torch.Size([3, 16, 16]), True)
    """
    return Transform(size, random_crop=random_crop, flip=flip, resize=resize)


def eval_transform(size: int | tuple[int, int], resize: int | None = None) -> Transform:
    """The official evaluation transform: resize -> centre crop -> [0, 1]; deterministic.

    ``size`` is a side (square) or ``(H, W)``; see [`Transform`][tokenkit.datasets.transforms.Transform].

    Examples:
        >>> from PIL import Image
        >>> transform = eval_transform(16, resize=32)
        >>> transform
        Transform(size=16, random_crop=False, flip=False, resize=32)
        >>> transform(Image.new("RGB", (60, 40))).shape
        torch.Size([3, 16, 16])
    """
    return Transform(size, random_crop=False, flip=False, resize=resize)
