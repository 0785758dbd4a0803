"""WebDataset tar shards in the official layout, read with the ``webdataset`` package.

Official: written by ``data/convert_imagenet_to_wds.py``, read by ``SimpleImageDataset`` in
``data/webdataset_reader.py`` L128-279.

A shard is a tar file whose members are grouped into samples by *key*, the
member path up to the first dot of its file name: ``000001.jpg`` and
``000001.cls`` form one sample (image bytes and the class id as text), as the
official ``convert_imagenet_to_wds.py`` writes them. Tar iteration and grouping
are ``webdataset.tariterators`` (imported when a shard is first read, so
``import tokenkit`` stays fast); shard patterns are expanded with ``braceexpand``.

Splitting across DataLoader workers and distributed ranks is **by shard**:
reader ``r = rank * num_workers + worker_id`` of ``R = world_size * num_workers``
reads shards ``r, r + R, r + 2R, ...`` (of the list shuffled per epoch when
``shuffle > 0``), so each shard is read exactly once per epoch; with fewer shards
than readers some readers get none. With ``resample=True`` every reader instead
draws shards with replacement from the whole list, forever (the official
``ResampledShards``); bound the epoch with the training loop's step count.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import random
import tarfile
from collections.abc import Iterator
from pathlib import Path

import torch
from braceexpand import UnbalancedBracesError, braceexpand
from torch.utils.data import IterableDataset, get_worker_info

from tokenkit.datasets.base import AugmentingDataset, OnError, check_on_error, item_generator, warn_skip
from tokenkit.datasets.transforms import IMAGE_EXTENSIONS, ImageDecodeError, decode_image
from tokenkit.errors import ConfigError
from tokenkit.registry import register
from tokenkit.validation import image_shape


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{0000..0009}`` (zero padding kept) and ``{a,b}`` in a shard pattern, as bash does.

    Backslashes are kept as they are (Windows paths), not read as escapes.

    Raises:
        ConfigError: The pattern has unbalanced braces.

    Examples:
        >>> expand_braces("train-{00..02}.tar")
        ['train-00.tar', 'train-01.tar', 'train-02.tar']
        >>> expand_braces("{a,b}-{1..2}")
        ['a-1', 'a-2', 'b-1', 'b-2']
    """
    try:
        return list(braceexpand(pattern, escape=False))
    except UnbalancedBracesError as err:
        raise ConfigError(f"shard pattern {pattern!r}: {err}") from None


def expand_shards(shards: str | tuple[str, ...] | list[str]) -> list[str]:
    """Shard paths from patterns: brace expansion, then glob (sorted) where a pattern has ``*?[``.

    Raises:
        ConfigError: A pattern matches nothing or a listed path does not exist.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     paths = expand_shards(WebDatasetConfig.example(tmp).shards)
        ...     globbed = expand_shards(os.path.join(tmp, "train-*.tar"))
        >>> [os.path.basename(path) for path in paths], paths == globbed
        (['train-0000.tar', 'train-0001.tar'], True)
        >>> expand_shards("no-such-shard-{0..1}.tar")
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: shard 'no-such-shard-0.tar' does not exist
    """
    out: list[str] = []
    for pattern in [shards] if isinstance(shards, str) else shards:
        for path in expand_braces(str(pattern)):
            if any(c in path for c in "*?["):
                found = sorted(glob.glob(path))
                if not found:
                    raise ConfigError(f"shard pattern {path!r} matches no file")
                out.extend(found)
            elif not os.path.isfile(path):
                raise ConfigError(f"shard {path!r} does not exist")
            else:
                out.append(path)
    return out


def _visible(name: str) -> bool:
    return not name.rpartition("/")[2].startswith(".")


def read_shard(path: str) -> Iterator[dict]:
    """Samples of one tar shard (plain or compressed, read as a stream) in file order.

    A sample is ``{"__key__": key, "__url__": path, ext: bytes, ...}``: the key is the
    member path up to the first dot of its file name, ``ext`` the rest in lower case.
    Hidden files and members without a dot in their file name are skipped.

    Raises:
        ImageDecodeError: The shard is not a readable tar, or a sample has two members with the same extension.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     samples = list(read_shard(expand_shards(WebDatasetConfig.example(tmp).shards)[0]))
        >>> [(sample["__key__"], sorted(sample)[2:]) for sample in samples]
        [('000000', ['cls', 'png']), ('000001', ['cls', 'png']), ('000002', ['cls', 'png'])]
        >>> samples[1]["cls"], os.path.basename(samples[1]["__url__"])
        (b'1', 'train-0000.tar')
    """
    from webdataset.tariterators import group_by_keys, tar_file_iterator

    try:
        with open(path, "rb") as stream:
            # skip_meta=None: a member under a ``__name__/`` folder is data (webdataset would drop it)
            members = tar_file_iterator(stream, skip_meta=None, select_files=_visible)
            # webdataset's key rule matches ours except for hidden files, dropped by ``_visible`` above
            yield from group_by_keys({**member, "__url__": path} for member in members)
    except (tarfile.TarError, ValueError) as err:  # ValueError: webdataset's duplicate member in a sample
        raise ImageDecodeError(f"cannot read shard {path}: {err.args[0] if err.args else err}") from err


def _reader() -> tuple[int, int]:
    """(reader index, number of readers) from the DataLoader worker and torch.distributed."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * workers + worker, world * workers


@dataclasses.dataclass(frozen=True)
class WebDatasetConfig:
    """Options of the ``webdataset`` dataset.

    Examples:
        >>> WebDatasetConfig(shards="data/train-{0000..0009}.tar", shuffle=5000).shards
        ('data/train-{0000..0009}.tar',)
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     config = WebDatasetConfig.example(tmp, seed=3)
        >>> os.path.basename(config.shards[0]), config.size, config.seed
        ('train-{0000..0001}.tar', 8, 3)
    """

    shards: tuple[str, ...] = ()
    """Shard paths or patterns: globs (``"data/train-*.tar"``) or braces (``"train-{0000..0009}.tar"``)."""
    size: int | tuple[int, int] = 256
    """Output side (the official 256), or ``(H, W)``."""
    random_crop: bool = True
    """Random crop in training mode (else a centre crop)."""
    flip: bool = True
    """Random horizontal flip in training mode."""
    shuffle: int = 0
    """Shuffle buffer size in samples (official: 5000); 0 keeps file order and shard order."""
    resample: bool = False
    """Draw shards with replacement, forever (official ``ResampledShards``), instead of one pass per epoch."""
    seed: int = 0
    """Seed of shard order, shuffle buffer and augmentation (combined with the epoch)."""
    on_error: OnError = "raise"
    """A corrupt image raises (naming shard and key), or with ``"skip"`` is skipped with a warning."""

    def __post_init__(self) -> None:
        if isinstance(self.shards, (str, os.PathLike)):
            object.__setattr__(self, "shards", (str(self.shards),))
        object.__setattr__(self, "shards", tuple(str(s) for s in self.shards))
        if isinstance(self.size, list):
            object.__setattr__(self, "size", tuple(self.size))
        image_shape(self.size, "size")
        if self.shuffle < 0:
            raise ValueError(f"shuffle must be >= 0, got {self.shuffle}")
        check_on_error(self.on_error)

    @classmethod
    def example(cls, directory: str | os.PathLike, **options) -> WebDatasetConfig:
        """Write two tiny shards in the official layout (``000000.jpg`` + ``000000.cls``) to ``directory``."""
        import io

        from PIL import Image

        gen = torch.Generator().manual_seed(0)
        index = 0
        for shard in range(2):
            with tarfile.open(Path(directory) / f"train-{shard:04d}.tar", "w") as tar:
                for _ in range(3):
                    h, w = (int(v) for v in torch.randint(8, 14, (2,), generator=gen))
                    buffer = io.BytesIO()
                    pixels = torch.randint(0, 256, (h, w, 3), generator=gen, dtype=torch.uint8).numpy()
                    Image.fromarray(pixels).save(buffer, format="PNG")
                    for ext, data in (("png", buffer.getvalue()), ("cls", str(index % 3).encode())):
                        info = tarfile.TarInfo(f"{index:06d}.{ext}")
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    index += 1
        return cls(**{"shards": (str(Path(directory) / "train-{0000..0001}.tar"),), "size": 8, **options})


@register("dataset", "webdataset")
class WebDataset(AugmentingDataset, IterableDataset):
    """Iterable dataset over WebDataset tar shards (see the module docstring for the worker split).

    Items are ``{"image": (3, size, size) float in [0, 1], "label": int (-1 without
    a ``cls`` member), "key": str}``. Everything random is seeded by
    ``(seed, epoch, ...)``: the same epoch with the same workers gives the same
    stream; augmentation is seeded by the sample key, so it does not depend on
    the shuffle.

    Args:
        config: [`WebDatasetConfig`][tokenkit.datasets.webdataset.WebDatasetConfig].

    Raises:
        ConfigError: A shard pattern matches nothing.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     items = list(WebDataset(WebDatasetConfig.example(tmp)))
        ...     shuffled = WebDataset(WebDatasetConfig.example(tmp, shuffle=4, seed=1))
        ...     first, again = [it["key"] for it in shuffled], [it["key"] for it in shuffled]
        >>> [it["key"] for it in items], [it["label"] for it in items], tuple(items[0]["image"].shape)
        (['000000', '000001', '000002', '000003', '000004', '000005'], [0, 1, 2, 0, 1, 2], (3, 8, 8))
        >>> first == again, sorted(first) == [it["key"] for it in items]
        (True, True)
    """

    Config = WebDatasetConfig

    def __init__(self, config: WebDatasetConfig) -> None:
        self.config = config
        self._transforms(config.size, config.random_crop, config.flip)
        self.shards = expand_shards(config.shards) if config.shards else []

    def _shard_stream(self, reader: int, readers: int) -> Iterator[str]:
        rng = random.Random(repr((self.config.seed, self.epoch, "shards", reader if self.config.resample else -1)))
        if self.config.resample:
            # Not webdataset's ResampledShards: its epoch is its own __iter__ count, not set_epoch (breaks resume).
            while True:
                yield rng.choice(self.shards)
        order = list(self.shards)
        if self.config.shuffle:
            rng.shuffle(order)  # same order in every reader (seeded without the reader), then split
        # Not webdataset's split_by_node + split_by_worker: they read shards rank + world * worker + k * R instead.
        yield from order[reader::readers]

    def _samples(self, reader: int, readers: int) -> Iterator[dict]:
        for shard in self._shard_stream(reader, readers):
            yield from read_shard(shard)

    def _shuffled(self, samples: Iterator[dict], reader: int) -> Iterator[dict]:
        # Not webdataset's detshuffle: it seeds with seed + its own __iter__ count (not set_epoch), same in all readers.
        if not self.config.shuffle:
            yield from samples
            return
        rng = random.Random(repr((self.config.seed, self.epoch, "buffer", reader)))
        buffer: list[dict] = []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.config.shuffle:
                i = rng.randrange(len(buffer))
                buffer[i], buffer[-1] = buffer[-1], buffer[i]
                yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def _decode(self, sample: dict) -> dict | None:
        name = f"{sample['__url__']}:{sample['__key__']}"
        ext = next((e for e in IMAGE_EXTENSIONS if e in sample), None)
        try:
            if ext is None:
                raise ImageDecodeError(f"sample {name} has no image member ({', '.join(IMAGE_EXTENSIONS)})")
            image = decode_image(sample[ext], f"{name}.{ext}")
            label = int(sample["cls"].decode().strip()) if "cls" in sample else -1
        except (ImageDecodeError, ValueError) as err:
            if self.config.on_error == "raise":
                raise ImageDecodeError(str(err)) from err
            warn_skip(err)
            return None
        generator = item_generator(self.config.seed, self.epoch, sample["__key__"])
        return {"image": self.transform(image, generator), "label": label, "key": sample["__key__"]}

    def __iter__(self) -> Iterator[dict]:
        if not self.shards:
            raise ConfigError("webdataset has no shards configured (set `shards`)")
        reader, readers = _reader()
        for sample in self._shuffled(self._samples(reader, readers), reader):
            item = self._decode(sample)
            if item is not None:
                yield item
