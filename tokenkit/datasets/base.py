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
    """A ``torch.Generator`` seeded by a stable hash of ``parts`` (unlike ``hash()``, equal across processes).

    Examples:
        >>> import torch
        >>> seed, epoch, index = 0, 1, 5
        >>> a = torch.rand(3, generator=item_generator(seed, epoch, index))
        >>> b = torch.rand(3, generator=item_generator(seed, epoch, index))  # in any process, in any order
        >>> torch.equal(a, b), torch.equal(a, torch.rand(3, generator=item_generator(seed, epoch + 1, index)))
        (True, False)
    """
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
    """Validate an ``on_error`` option.

    Raises:
        ValueError: Not ``"raise"`` or ``"skip"``.

    Examples:
        >>> check_on_error("skip")
        >>> check_on_error("ignore")
        Traceback (most recent call last):
        ...
        ValueError: on_error must be 'raise' or 'skip', got 'ignore'
    """
    if value not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {value!r}")


def warn_skip(err: Exception) -> None:
    """Warn that a bad file is skipped (``on_error="skip"``).

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_skip(ValueError("broken.png is truncated"))
        >>> caught[0].category.__name__, str(caught[0].message)
        ('RuntimeWarning', 'skipping unreadable image: broken.png is truncated')
    """
    warnings.warn(f"skipping unreadable image: {err}", RuntimeWarning, stacklevel=3)


class DatasetModes:
    """Mixin: the mode interface every dataset part shares (``train()``, ``eval()``, ``set_epoch()``).

    Mirrors ``nn.Module``'s mode switch; on its own it only records the mode and
    the epoch (enough for a dataset without randomness, such as ``tokens``).

    Examples:
        >>> from torch.utils.data import Dataset
        >>> class Squares(DatasetModes, Dataset):
        ...     def __len__(self):
        ...         return 4
        ...     def __getitem__(self, index):
        ...         return {"value": index * index, "key": str(index)}
        >>> ds = Squares()
        >>> ds.training, ds.eval().training, ds.train().training
        (True, False, True)
        >>> ds.set_epoch(3)
        >>> ds.epoch
        3
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

    Examples:
        >>> import torch, tokenkit as tk
        >>> ds = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=6, size=16, flip=True))
        >>> isinstance(ds, AugmentingDataset), ds.transform.random_crop, ds.transform.flip
        (True, True, True)
        >>> ds.set_epoch(1)  # other random crops than epoch 0
        >>> ds.eval().transform.random_crop, ds.transform.flip  # centre crops, no flips
        (False, False)
        >>> torch.equal(ds[0]["image"], ds[0]["image"])  # the same item is the same crop
        True
    """

    def _transforms(self, size: int | tuple[int, int], random_crop: bool, flip: bool, resize: int | None = None) -> None:
        self._train_transform = Transform(size, random_crop=random_crop, flip=flip, resize=resize)
        self._eval_transform = Transform(size, random_crop=False, flip=False, resize=resize)

    @property
    def transform(self) -> Transform:
        """The transform of the current mode."""
        return self._train_transform if self.training else self._eval_transform

