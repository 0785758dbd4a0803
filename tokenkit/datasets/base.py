"""Helpers shared by the dataset parts: seeding, train/eval mode, the item dict.

Every dataset part yields dicts ``{"image": (3, H, W) float in [0, 1],
"label": int (-1 when unlabelled), "key": str}``. Random augmentations draw
from a generator seeded by ``(seed, epoch, item)``, so an item does not depend
on the order it is read in, on the number of DataLoader workers, or on what was
read before: a resumed run that calls ``set_epoch(epoch)`` sees the same data.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Literal

import torch

from tokenkit.datasets.transforms import Transform

OnError = Literal["raise", "skip"]
"""What a dataset does with a file that cannot be decoded: raise (default) or warn and skip it."""


def item_generator(*parts: Any) -> torch.Generator:
    """A ``torch.Generator`` seeded by a stable hash of ``parts`` (unlike ``hash()``, equal across processes)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def sequence_index(index: int, length: int, what: str) -> int:
    """``index`` as a position in ``range(length)``, following Python's sequence protocol.

    Negative indices count from the end; anything outside ``[-length, length)`` raises
    ``IndexError``, which is what ends ``for item in dataset`` and ``list(dataset)``.

    Raises:
        IndexError: ``index`` is out of range (the message names ``what`` and the length).
        TypeError: ``index`` is not an integer.

    Examples:
        >>> sequence_index(-1, 5, "crops")
        4
        >>> sequence_index(5, 5, "crops")
        Traceback (most recent call last):
        ...
        IndexError: index 5 out of range for 5 crops
    """
    if isinstance(index, bool) or not isinstance(index, int):
        try:
            index = int(index.__index__())  # numpy and torch integer scalars
        except AttributeError:
            raise TypeError(f"{what} are indexed by integers, got {type(index).__name__}") from None
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for {length} {what}")
    return index % length


def check_on_error(value: str) -> None:
    """Validate an ``on_error`` option."""
    if value not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {value!r}")


def warn_skip(err: Exception) -> None:
    """Warn that a bad file is skipped (``on_error="skip"``)."""
    warnings.warn(f"skipping unreadable image: {err}", RuntimeWarning, stacklevel=3)


class DatasetModes:
    """Mixin: the mode interface every dataset part shares (``train()``, ``eval()``, ``set_epoch()``).

    Mirrors ``nn.Module``'s mode switch; on its own it only records the mode and
    the epoch (enough for a dataset without randomness, such as ``tokens``).
    """

    training: bool = True
    epoch: int = 0

    def train(self, mode: bool = True) -> DatasetModes:
        """Training mode (``mode=True``) or eval mode; returns ``self``."""
        self.training = bool(mode)
        return self

    def eval(self) -> DatasetModes:
        """Same as ``train(False)``; returns ``self``."""
        return self.train(False)

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of ``epoch`` (call before each epoch, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)


class AugmentingDataset(DatasetModes):
    """Mixin: ``train()``/``eval()`` switch between the configured augmentation and the eval transform.

    In eval mode crops are centred and nothing is flipped. ``set_epoch(epoch)``
    changes the random draws.
    """

    def _transforms(self, size: int, random_crop: bool, flip: bool, resize: int | None = None) -> None:
        self._train_transform = Transform(size, random_crop=random_crop, flip=flip, resize=resize)
        self._eval_transform = Transform(size, random_crop=False, flip=False, resize=resize)

    @property
    def transform(self) -> Transform:
        """The transform of the current mode."""
        return self._train_transform if self.training else self._eval_transform

