"""Image files in and out: [`load_images`][tokenkit.images.load_images] and [`save_images`][tokenkit.images.save_images].

``load_images`` reads files and folders into a batch ``(B, 3, size, size)`` float32 in
[0, 1] with the official TiTok evaluation preprocessing (shorter side resized to ``size``
with Pillow's antialiased bicubic filter, then a centre crop: torchvision's ``Resize`` +
``CenterCrop``, see [`eval_transform`][tokenkit.datasets.transforms.eval_transform]).
Every file goes through [`to_rgb`][tokenkit.images.to_rgb] first, which handles grayscale,
palette, alpha, CMYK, 16-bit and float images and the EXIF orientation.

``save_images`` writes a batch back as PNG (or JPEG / WebP) files, atomically, and never
overwrites a file unless asked to.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> import tokenkit as tk
    >>> folder = Path(tk.data.__file__).parent / "images"      # the six bundled JPEGs
    >>> images = tk.load_images(folder, size=32)
    >>> images.shape, images.dtype
    (torch.Size([6, 3, 32, 32]), torch.float32)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     paths = tk.save_images(images, out, names=tk.data.image_names())
    ...     again = tk.load_images(out)                            # PNG round trip: exact
    >>> [p.name for p in paths][:2], bool((again == images).all())
    (['astronaut.png', 'chelsea.png'], True)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image

from tokenkit.contracts import check_images
from tokenkit.datasets.transforms import (
    ImageDecodeError,
    decode_with,
    eval_transform,
    flatten_alpha,
    to_8bit,
    to_tensor,
)
from tokenkit.errors import ConfigError, TokenkitError
from tokenkit.validation import image_shape
from tokenkit.weights.io import atomic_write

__all__ = ["LOAD_EXTENSIONS", "SAVE_FORMATS", "LoadedImages", "OutputExistsError", "list_images", "load_image",
           "load_images", "output_names", "read_images", "save_images", "to_rgb"]

LOAD_EXTENSIONS: tuple[str, ...] = ("bmp", "gif", "jpeg", "jpg", "png", "tif", "tiff", "webp")
"""Extensions (lowercase, no dot) of the files found in a folder; a file named explicitly is read whatever its name."""

SAVE_FORMATS: dict[str, str] = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
"""Formats [`save_images`][tokenkit.images.save_images] writes: extension -> Pillow format."""

_SAVE_OPTIONS: dict[str, dict] = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True}}

OnError = Literal["raise", "skip"]

Paths = str | os.PathLike | Iterable[str | os.PathLike]


class OutputExistsError(TokenkitError):
    """An output file exists and overwriting was not asked for (``overwrite=True``)."""


class LoadedImages(NamedTuple):
    """What [`read_images`][tokenkit.images.read_images] returns.

    Attributes:
        images: ``(B, 3, H, W)`` float32 in [0, 1], one row per readable file.
        paths: The file of each row (``B`` paths, in order).
        skipped: ``(path, reason)`` of each file that could not be decoded (only with ``on_error="skip"``).
    """

    images: torch.Tensor
    paths: list[Path]
    skipped: list[tuple[Path, str]]


def to_rgb(image: Image.Image, *, exif: bool = True) -> Image.Image:
    """A new 8-bit RGB image from a PIL image of any common mode.

    * ``exif=True``: the EXIF orientation is applied first (``PIL.ImageOps.exif_transpose``),
      so a phone photo taken upright comes out upright.
    * 16-bit (``I;16``, ``I;16B``, ``I;16L``, ``I``) and float (``F``) images are scaled to
      8 bit by [`to_8bit`][tokenkit.datasets.transforms.to_8bit] (65535 -> 255, float
      [0, 1] -> [0, 255]); Pillow's ``convert("RGB")`` would clip them, so a mid-grey 16-bit
      PNG would come out white.
    * Alpha (``RGBA``, ``LA``, ``PA``, and palette or grayscale images with a transparent
      colour) is composited over white. Dropping the alpha channel instead would show the
      colours stored under fully transparent pixels, which are arbitrary (often black, or
      left-overs of an editor) and not part of the picture.
    * ``CMYK`` uses Pillow's conversion; embedded ICC colour profiles are not applied (nor
      are they for any other mode).
    * Grayscale (``L``, ``1``), palette (``P``) and the rest: ``convert("RGB")``.

    Args:
        image: A PIL image.
        exif: Apply the EXIF orientation tag.

    Returns:
        An ``RGB`` image (a new object; ``image`` is left as it was).

    Examples:
        >>> import numpy as np
        >>> from PIL import Image
        >>> from tokenkit.images import to_rgb
        >>> to_rgb(Image.new("RGBA", (1, 1), (255, 0, 0, 0))).getpixel((0, 0))  # transparent -> white
        (255, 255, 255)
        >>> to_rgb(Image.new("LA", (1, 1), (0, 128))).getpixel((0, 0))         # half-transparent black
        (127, 127, 127)
        >>> to_rgb(Image.fromarray(np.full((1, 1), 32768, dtype=np.uint16))).getpixel((0, 0))  # 16-bit grey
        (128, 128, 128)
    """
    if exif:
        from PIL import ImageOps

        image = ImageOps.exif_transpose(image)
    return flatten_alpha(to_8bit(image)).convert("RGB")


def list_images(paths_or_folder: Paths) -> list[Path]:
    """The files that [`load_images`][tokenkit.images.load_images] reads, in its order.

    Args:
        paths_or_folder: A file, a folder, or a list of files and folders. A folder is
            searched recursively for files with the extensions in
            [`LOAD_EXTENSIONS`][tokenkit.images.LOAD_EXTENSIONS] (case-insensitive), sorted by
            path relative to the folder; hidden files and folders (names starting with ``.``)
            are left out. A file given by name is kept whatever its extension, so a non-image
            fails (or is skipped) when it is decoded.

    Returns:
        The files, in order (a list's items in their order, each folder expanded in place).

    Raises:
        ConfigError: Nothing given, a path that does not exist, or a folder without images.

    Examples:
        >>> from pathlib import Path
        >>> import tokenkit as tk
        >>> from tokenkit.images import list_images
        >>> folder = Path(tk.data.__file__).parent / "images"
        >>> [p.name for p in list_images(folder)][:3]
        ['astronaut.jpg', 'chelsea.jpg', 'coffee.jpg']
        >>> [p.name for p in list_images([folder / "rocket.jpg", folder / "coffee.jpg"])]
        ['rocket.jpg', 'coffee.jpg']
    """
    items = [paths_or_folder] if isinstance(paths_or_folder, (str, os.PathLike)) else list(paths_or_folder)
    if not items:
        raise ConfigError("no image files or folders given")
    files: list[Path] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted((p for p in path.rglob("*") if p.is_file() and _is_image_name(p.relative_to(path))),
                           key=lambda p: p.relative_to(path).as_posix())
            if not found:
                raise ConfigError(f"no images ({', '.join(LOAD_EXTENSIONS)}) under {str(path)!r}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"no such file or folder: {str(item)!r}")
    return files


def _is_image_name(relative: Path) -> bool:
    return relative.suffix.lower().lstrip(".") in LOAD_EXTENSIONS and not any(
        part.startswith(".") for part in relative.parts)


def output_names(paths: Sequence[str | os.PathLike]) -> list[str]:
    """Short, unique output names for ``paths``: the file name without extension, with as
    many parent folder names (joined by ``_``) as it takes to tell files apart; a file that
    still clashes (the same file twice, or ``a.jpg`` next to ``a.png``) gets ``-2``, ``-3``, ...

    Examples:
        >>> from tokenkit.images import output_names
        >>> output_names(["photos/cat/001.jpg", "photos/dog/001.jpg", "photos/dog/002.png"])
        ['cat_001', 'dog_001', '002']
        >>> output_names(["a.jpg", "a.png"])
        ['a', 'a-2']
    """
    parts = [Path(os.path.abspath(p)).with_suffix("").parts[1:] or ("image",) for p in paths]
    depth = [1] * len(parts)

    def name(i: int) -> str:
        return "_".join(parts[i][-depth[i]:])

    while True:
        groups: dict[str, list[int]] = {}
        for i in range(len(parts)):
            groups.setdefault(name(i), []).append(i)
        grown = False
        for members in groups.values():
            if len({parts[i] for i in members}) > 1:  # more folder names can tell these apart
                for i in members:
                    if depth[i] < len(parts[i]):
                        depth[i] += 1
                        grown = True
        if not grown:
            break
    names, seen = [], set()
    for i in range(len(parts)):
        base, candidate, k = name(i), name(i), 1
        while candidate in seen:
            k += 1
            candidate = f"{base}-{k}"
        seen.add(candidate)
        names.append(candidate)
    return names


def _check_size(size: int | tuple[int, int] | None) -> None:
    if size is None:
        return
    try:
        image_shape(size, "size")
    except ValueError:
        raise ConfigError(f"size must be a positive int, an (H, W) pair or None (keep the original size), "
                          f"got {size!r}") from None


def load_image(path: str | os.PathLike, size: int | tuple[int, int] | None = None, *,
               exif: bool = True) -> torch.Tensor:
    """One image file as ``(3, size, size)`` float32 in [0, 1] (``(3, H, W)`` with ``size=(H, W)``, or the
    file's own ``(3, H, W)`` with ``size=None``).

    Decoded with [`to_rgb`][tokenkit.images.to_rgb], then (with ``size``) the official
    evaluation transform: shorter side resized to ``size`` (Pillow bicubic, antialiased),
    centre crop; for ``size=(H, W)``, resized (aspect kept) to cover ``(H, W)``, centre crop.

    Raises:
        ImageDecodeError: The file is corrupt, truncated, not an image or over Pillow's
            pixel limit (the message names it).

    Examples:
        >>> from pathlib import Path
        >>> import tokenkit as tk
        >>> from tokenkit.images import load_image
        >>> chelsea = Path(tk.data.__file__).parent / "images" / "chelsea.jpg"
        >>> load_image(chelsea).shape, load_image(chelsea, 64).shape, load_image(chelsea, (64, 96)).shape
        (torch.Size([3, 256, 385]), torch.Size([3, 64, 64]), torch.Size([3, 64, 96]))
    """
    _check_size(size)
    image = decode_with(path, lambda im: to_rgb(im, exif=exif))
    return to_tensor(image) if size is None else eval_transform(size)(image)


def read_images(paths_or_folder: Paths, size: int | tuple[int, int] | None = None, *, exif: bool = True,
                on_error: OnError = "raise") -> LoadedImages:
    """[`load_images`][tokenkit.images.load_images], also telling which file each row comes from
    and which files were skipped.

    Returns:
        [`LoadedImages`][tokenkit.images.LoadedImages] ``(images, paths, skipped)``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import tokenkit as tk
        >>> from tokenkit.images import read_images
        >>> folder = Path(tk.data.__file__).parent / "images"
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = (Path(tmp) / "broken.png").write_bytes(b"not a png")
        ...     loaded = read_images([folder / "coffee.jpg", Path(tmp) / "broken.png"], 32, on_error="skip")
        >>> loaded.images.shape, [p.name for p in loaded.paths], [p.name for p, _ in loaded.skipped]
        (torch.Size([1, 3, 32, 32]), ['coffee.jpg'], ['broken.png'])
    """
    _check_size(size)
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    files = list_images(paths_or_folder)
    tensors: list[torch.Tensor] = []
    paths: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in files:
        try:
            tensor = load_image(path, size, exif=exif)
        except ImageDecodeError as err:
            if on_error == "raise":
                raise
            warnings.warn(f"skipping unreadable image: {err}", RuntimeWarning, stacklevel=2)
            skipped.append((path, str(err)))
            continue
        if tensors and tensor.shape != tensors[0].shape:
            raise ConfigError(
                f"images have different sizes (H x W: {paths[0]} is {tensors[0].shape[1]}x{tensors[0].shape[2]}, {path} "
                f"is {tensor.shape[1]}x{tensor.shape[2]}); pass size= to resize and centre-crop them all to one size")
        tensors.append(tensor)
        paths.append(path)
    if not tensors:
        raise ImageDecodeError(f"none of the {len(files)} files could be decoded; first: {skipped[0][1]}")
    return LoadedImages(torch.stack(tensors), paths, skipped)


def load_images(paths_or_folder: Paths, size: int | tuple[int, int] | None = None, *, exif: bool = True,
                on_error: OnError = "raise") -> torch.Tensor:
    """Read image files into one batch, with the official TiTok evaluation preprocessing.

    Each file is decoded to 8-bit RGB by [`to_rgb`][tokenkit.images.to_rgb] (EXIF
    orientation, alpha over white, 16-bit and float scaled, CMYK), then its shorter side is
    resized to ``size`` (Pillow bicubic, antialiased) and the centre ``size x size`` is cropped:
    [`eval_transform(size)`][tokenkit.datasets.transforms.eval_transform], which matches
    torchvision's ``Resize(size)`` + ``CenterCrop(size)`` exactly. With ``size=(H, W)`` each
    image is resized (aspect kept) to the smallest size covering ``(H, W)`` and the centre
    ``H x W`` is cropped (for a tokenizer built with ``image_size=(H, W)``).

    Args:
        paths_or_folder: A file, a folder (searched recursively, sorted by relative path,
            image extensions only), or a list of files and folders; see
            [`list_images`][tokenkit.images.list_images], which lists the files read, in order.
        size: Output side, or ``(H, W)``. ``None`` keeps the original size, which all images must share.
        exif: Apply the EXIF orientation tag (photos from phones and cameras).
        on_error: A file that cannot be decoded raises (``"raise"``) or is left out with a
            ``RuntimeWarning`` (``"skip"``); [`read_images`][tokenkit.images.read_images]
            returns which files were read and which were skipped.

    Returns:
        ``(B, 3, size, size)`` float32 in [0, 1] (``(B, 3, H, W)`` with ``size=(H, W)`` or ``size=None``).

    Raises:
        ImageDecodeError: A corrupt, truncated or non-image file (naming it), with
            ``on_error="raise"``; with ``"skip"``, when no file at all could be decoded.
        ConfigError: A missing path, a folder without images, a bad ``size`` or
            ``on_error``, or (with ``size=None``) images of different sizes.

    Examples:
        >>> from pathlib import Path
        >>> import tokenkit as tk
        >>> folder = Path(tk.data.__file__).parent / "images"
        >>> tk.load_images(folder, size=32).shape                       # every bundled image
        torch.Size([6, 3, 32, 32])
        >>> x = tk.load_images([folder / "astronaut.jpg", folder / "retina.jpg"])   # both 256x256
        >>> x.shape, 0 <= x.min().item() <= x.max().item() <= 1
        (torch.Size([2, 3, 256, 256]), True)
        >>> tok = tk.build("titok-tiny")                                 # takes 32x32 images
        >>> tok.tokenize(tk.load_images(folder / "chelsea.jpg", size=tok.image_size)).shape
        torch.Size([1, 8])
        >>> tk.load_images(folder / "chelsea.jpg", size=(32, 48)).shape   # for image_size=(32, 48)
        torch.Size([1, 3, 32, 48])
    """
    return read_images(paths_or_folder, size, exif=exif, on_error=on_error).images


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(f"image names must be plain file names (no folders), got {name!r}")
    return name


def save_images(images: torch.Tensor, out: str | os.PathLike, names: Sequence[str] | None = None, *,
                format: str | None = None, overwrite: bool = False) -> list[Path]:
    """Write a batch of images as image files, atomically.

    Values are clamped to [0, 1] and rounded to 8 bit (``round(255 * x)``), so images read
    by [`load_images`][tokenkit.images.load_images] and saved as PNG read back identical.
    Each file is written to a temporary file in the same folder and renamed over its name,
    so an interrupt never leaves a partial file.

    Args:
        images: ``(B, 3, H, W)`` float (values outside [0, 1] are clamped).
        out: A folder (created if needed) for ``B`` files, or, when ``B == 1``, a file name
            ending in ``.png``, ``.jpg``, ``.jpeg`` or ``.webp``.
        names: ``B`` file names without folders; the extension is added unless the name
            already ends in it. Default: ``00000``, ``00001``, ...
        format: ``"png"`` (default), ``"jpg"`` / ``"jpeg"`` (quality 95) or ``"webp"``
            (lossless). Default for a file ``out``: its extension.
        overwrite: Replace existing files; otherwise an existing file is an error and
            nothing is written.

    Returns:
        The paths written, one per image.

    Raises:
        OutputExistsError: A file exists and ``overwrite`` is false (nothing is written).
        ConfigError: Bad ``names`` (count, duplicates, folders in them), ``format``, or a file
            ``out`` for more than one image.
        ContractError: ``images`` is not a ``(B, 3, H, W)`` float tensor.

    Examples:
        >>> import tempfile, torch
        >>> import tokenkit as tk
        >>> images = torch.rand(2, 3, 8, 8)
        >>> with tempfile.TemporaryDirectory() as out:
        ...     paths = tk.save_images(images, out, names=["left", "right"])
        ...     print([p.name for p in paths])
        ...     try:
        ...         tk.save_images(images, out, names=["left", "right"])
        ...     except tk.images.OutputExistsError as err:
        ...         print("refused")
        ['left.png', 'right.png']
        refused
    """
    images = check_images(images, channels=3, check_range=False)
    count = images.shape[0]
    out = Path(out)
    suffix = out.suffix.lower().lstrip(".")
    if suffix in SAVE_FORMATS and not out.is_dir():  # a single file
        if count != 1:
            raise ConfigError(f"out {str(out)!r} is a file name, but there are {count} images; give a folder")
        if names is not None:
            raise ConfigError("names are for a folder out; out is a file name")
        fmt = (format or suffix).lower()
        targets = [out]
    else:
        fmt = (format or "png").lower()
        if names is None:
            names = [f"{i:05d}" for i in range(count)]
        names = [_check_name(n) for n in names]
        if len(names) != count:
            raise ConfigError(f"got {len(names)} names for {count} images")
        if len(set(names)) != len(names):
            raise ConfigError(f"image names must be unique, got duplicates in {names}")
        targets = [out / (n if n.lower().endswith(f".{fmt}") else f"{n}.{fmt}") for n in names]
    if fmt not in SAVE_FORMATS:
        raise ConfigError(f"format must be one of {', '.join(SAVE_FORMATS)}, got {fmt!r}")
    existing = [p for p in targets if p.exists()]
    if any(p.is_dir() for p in existing):
        raise ConfigError(f"{next(p for p in existing if p.is_dir())} is a folder, not an image file")
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]} already exists{more}; pass overwrite=True to replace it")
    pixels = (images.detach().float().nan_to_num(0.0).clamp(0, 1) * 255).round().to(torch.uint8)
    pixels = pixels.permute(0, 2, 3, 1).cpu().numpy()
    pil_format = SAVE_FORMATS[fmt]
    for array, path in zip(pixels, targets):
        image = Image.fromarray(np.ascontiguousarray(array))  # (H, W, 3) uint8: RGB
        atomic_write(path, lambda tmp, image=image: image.save(tmp, format=pil_format,
                                                               **_SAVE_OPTIONS.get(pil_format, {})))
    return targets
