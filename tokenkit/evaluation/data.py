"""Evaluation inputs: image folders / file lists / shards / tensors / ``.npz`` batches, read by a protocol.

Every source yields batches ``{"image": (B, 3, S, S) float32 = uint8 / 255, "index": (B,),
"key": [...]}`` in a fixed order, with batch ``k`` holding items ``k*B .. k*B + B - 1``
(for map-style sources), so an interrupted pass resumes at a batch boundary and
several processes can share the batches (``k % world == rank``).

Files that cannot be decoded are skipped and counted (the result names them); files
without an image extension are ignored and counted. A run never stops on a bad file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from tokenkit.datasets.transforms import ImageDecodeError, decode_image
from tokenkit.errors import ConfigError
from tokenkit.evaluation.protocols import Protocol
from tokenkit.factory import build_part
from tokenkit.images import list_images
from tokenkit.specs import Part


@dataclasses.dataclass
class SourceInfo:
    """What an evaluation read: a description, and the files it skipped or ignored."""

    description: str
    total: int | None
    ignored: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)


def find_image_files(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> tuple[list[Path], list[str]]:
    """The image files [`list_images`][tokenkit.images.list_images] finds under ``paths``, and the other
    (non-hidden) files met in the folders, which an evaluation ignores and counts.

    Raises:
        ConfigError: A path that does not exist, or a folder without images.
    """
    files = list_images(paths)
    listed = set(files)
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    ignored = [str(p) for item in items if Path(item).expanduser().is_dir()
               for p in sorted(Path(item).expanduser().rglob("*"))
               if p.is_file() and p not in listed
               and not any(part.startswith(".") for part in p.relative_to(Path(item).expanduser()).parts)]
    return files, ignored


class ImageFiles(Dataset):
    """Image files cropped by a protocol; an undecodable file gives ``ok=False`` instead of an error.

    Items: ``{"image": (3, size, size) float32 in [0, 1] (uint8 / 255, as ToTensor), "index", "key", "ok", "error"}``.
    """

    def __init__(self, files: Sequence[Path], size: int, protocol: Protocol) -> None:
        self.files, self.size, self.protocol = list(files), int(size), protocol

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.files[index]
        try:
            image = self.protocol.crop_image(decode_image(path), self.size)
            array = np.asarray(image, dtype=np.float32) / 255.0
            tensor, ok, error = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous(), True, ""
        except (ImageDecodeError, ValueError, OSError) as err:
            tensor, ok, error = torch.zeros(3, self.size, self.size), False, str(err)
        return {"image": tensor, "index": index, "key": str(path), "ok": ok, "error": error}


class NpzImages(Dataset):
    """Images of an ADM-format ``.npz`` (``arr_0``, uint8 NHWC), memory-mapped when stored uncompressed."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        data = np.load(self.path, mmap_mode="r")
        if "arr_0" not in data.files:
            raise ConfigError(f"{path} has no arr_0 (images)")
        self.images = data["arr_0"]
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ConfigError(f"{path}: arr_0 must be (N, H, W, 3) uint8, got {self.images.shape} {self.images.dtype}")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        array = np.asarray(self.images[index], dtype=np.float32) / 255.0
        return {"image": torch.from_numpy(array).permute(2, 0, 1).contiguous(), "index": index,
                "key": f"{self.path}[{index}]", "ok": True, "error": ""}


class TensorImages(Dataset):
    """``(M, 3, H, W)`` float images in [0, 1] as an evaluation source."""

    def __init__(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ConfigError(f"evaluation images must be (M, 3, H, W) float in [0, 1], got {tuple(images.shape)} "
                              f"{images.dtype}")
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": self.images[index], "index": index, "key": str(index), "ok": True, "error": ""}


def open_source(data: Any, size: int, protocol: Protocol) -> tuple[Any, SourceInfo]:
    """An evaluation source for ``data`` and its description.

    ``data``: an image tensor ``(M, 3, S, S)``; a folder, a file or a list of them (the
    protocol's crop); an ADM ``.npz`` (``arr_0``); a ``.tar`` shard pattern (the official
    eval crop, only for protocols using it); or a dataset part (used as built, in eval mode).
    """
    if isinstance(data, torch.Tensor):
        return TensorImages(data), SourceInfo(f"tensor of {len(data)} images", len(data))
    if isinstance(data, (str, os.PathLike)) and str(data).endswith(".npz") and Path(data).is_file():
        source = NpzImages(data)
        return source, SourceInfo(f"ADM .npz {data} ({len(source)} images)", len(source))
    if isinstance(data, (str, os.PathLike)) and str(data).lower().endswith((".tar", ".tar.gz", ".tgz")):
        if protocol.crop != "resize-center-crop":
            raise ConfigError(f"protocol {protocol.name!r} crops with {protocol.crop!r}; shards are read with the "
                              "official resize + centre crop only (use an image folder or an .npz)")
        dataset = build_part("dataset", Part("webdataset", shards=(str(data),), size=size, on_error="skip"))
        return dataset, SourceInfo(f"webdataset shards {data}", None)
    if isinstance(data, (str, os.PathLike)) or (isinstance(data, (list, tuple)) and data
                                                and all(isinstance(d, (str, os.PathLike)) for d in data)):
        files, ignored = find_image_files(data)
        where = str(data) if isinstance(data, (str, os.PathLike)) else f"{len(data)} paths"
        return ImageFiles(files, size, protocol), SourceInfo(f"image files in {where}", len(files), ignored=ignored)
    if isinstance(data, (Dataset, IterableDataset)) or hasattr(data, "__getitem__") or hasattr(data, "__iter__"):
        total = len(data) if hasattr(data, "__len__") else None
        return data, SourceInfo(f"dataset {type(data).__name__}" + (f" ({total} items)" if total else ""), total)
    raise ConfigError(f"cannot evaluate on {type(data).__name__}: give a folder, files, an .npz, shards, "
                      "a dataset or an image tensor")


def _collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {"image": torch.stack([i["image"] for i in items]),
                             "index": torch.tensor([int(i.get("index", -1)) for i in items]),
                             "key": [str(i.get("key", "")) for i in items],
                             "ok": torch.tensor([bool(i.get("ok", True)) for i in items]),
                             "error": [str(i.get("error", "")) for i in items]}
    if "label" in items[0]:
        batch["label"] = torch.tensor([int(i["label"]) for i in items])
    return batch


def iterate_batches(source: Any, batch_size: int, *, rank: int = 0, world: int = 1, done: set[int] | None = None,
                    num_workers: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(batch_number, batch)`` of this process, skipping batch numbers in ``done``.

    Map-style sources: batch ``k`` = items ``[k*B, (k+1)*B)``, this process takes ``k % world == rank``.
    Iterable sources split themselves across processes; their batches are numbered in reading order.
    """
    done = done or set()
    if isinstance(source, IterableDataset) or not hasattr(source, "__len__"):
        if hasattr(source, "eval"):
            source.eval()
        loader = DataLoader(source, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate)
        for k, batch in enumerate(loader):
            if k not in done:
                yield k, batch
        return
    if hasattr(source, "eval"):
        source.eval()
    total = len(source)
    numbers = [k for k in range(rank, (total + batch_size - 1) // batch_size, world) if k not in done]
    batches = [list(range(k * batch_size, min(total, (k + 1) * batch_size))) for k in numbers]
    loader = DataLoader(source, batch_sampler=batches, num_workers=num_workers, collate_fn=_collate)
    for k, batch in zip(numbers, loader):
        if (batch["index"] < 0).all():
            batch["index"] = torch.arange(k * batch_size, k * batch_size + len(batch["image"]))
        yield k, batch
