"""Training batches with a resumable position, split across processes.

[`BatchStream`][tokenkit.train.data.BatchStream] turns a tensor of images, a
map-style dataset or an iterable (streaming) dataset into an endless sequence
of per-process batches ``{"image": (B, C, H, W), "label": (B,), ...}``.
Its position is two numbers, ``(epoch, offset)``: a resumed run rebuilds the
same stream and continues where the interrupted one stopped.

* **Tensor / map-style.** Epoch ``e`` is a permutation seeded by ``(seed, e)``.
  Each optimizer micro-step takes the next *global* batch of
  ``batch_size * world`` indices and process ``r`` keeps the ``r``-th slice,
  so ``P`` processes with batch ``B`` see exactly the images one process with
  batch ``P * B`` sees. A trailing partial global batch is dropped.
* **Iterable** (e.g. ``webdataset``). The dataset splits itself across
  processes and DataLoader workers; an epoch ends when the stream does. On
  resume the first ``offset`` batches of the epoch are read again and skipped.

A dataset with ``set_epoch(epoch)`` is told each new epoch before it is read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, IterableDataset, default_collate

from tokenkit.errors import ConfigError


def to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The batch with its tensors moved to ``device`` (other values, e.g. keys, as they are).

    Examples:
        >>> import torch
        >>> batch = to_device({"image": torch.zeros(2, 3, 8, 8), "key": ["a", "b"]}, "cpu")
        >>> batch["image"].device, batch["key"]
        (device(type='cpu'), ['a', 'b'])
    """
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def batches_once(data: Any, batch_size: int, *, num_workers: int = 0, pin_memory: bool = False
                 ) -> Iterator[dict[str, Any]]:
    """Every item of ``data`` once, in order, in batches (the last may be smaller).

    A dataset with ``eval()``/``train()`` (the augmenting datasets) is read in eval mode
    (centre crops, no flips) and put back in its previous mode afterwards. The DataLoader
    seeds itself, so reading leaves the global random state alone.

    Args:
        data: Images ``(M, C, H, W)`` or a map-style dataset of item dicts.
        batch_size: Items per batch.
        num_workers: DataLoader worker processes.
        pin_memory: Pinned host memory (faster copies to a GPU).

    Yields:
        Batches ``{"image": (B, C, H, W), ...}``.

    Examples:
        >>> import torch, tokenkit as tk
        >>> [tuple(b["image"].shape) for b in batches_once(torch.zeros(5, 3, 8, 8), batch_size=2)]
        [(2, 3, 8, 8), (2, 3, 8, 8), (1, 3, 8, 8)]
        >>> ds = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=6, size=16))
        >>> [b["key"] for b in batches_once(ds, batch_size=4)]
        [['astronaut/0/0', 'chelsea/0/1', 'coffee/0/2', 'hubble_deep_field/0/3'], ['retina/0/4', 'rocket/0/5']]
        >>> ds.training  # read in eval mode, then put back
        True
    """
    if isinstance(data, torch.Tensor):
        for start in range(0, len(data), batch_size):
            yield {"image": data[start : start + batch_size]}
        return
    was_training = getattr(data, "training", None)
    if hasattr(data, "eval"):
        data.eval()
    try:
        yield from DataLoader(data, batch_size=batch_size, num_workers=num_workers, collate_fn=as_batch,
                              pin_memory=pin_memory, generator=torch.Generator().manual_seed(0))
    finally:
        if was_training is not None:
            data.train(was_training)


def as_batch(items: Any) -> dict[str, Any]:
    """``default_collate`` of item dicts, refusing items of another kind with a clear error.

    Raises:
        ConfigError: The items are not dicts.

    Examples:
        >>> import torch
        >>> batch = as_batch([{"image": torch.zeros(3, 8, 8), "label": 1, "key": "a", "text": "a cat"},
        ...                   {"image": torch.ones(3, 8, 8), "label": 2, "key": "b", "text": "a dog"}])
        >>> batch["image"].shape, batch["label"], batch["key"]
        (torch.Size([2, 3, 8, 8]), tensor([1, 2]), ['a', 'b'])
        >>> batch["text"]  # captions stay a list of strings (text-aware tokenizers, MaskGen)
        ['a cat', 'a dog']
        >>> as_batch([torch.zeros(3), torch.zeros(3)])
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: dataset items must be dicts such as {'image': ..., 'label': ...}, got Tensor
    """
    batch = default_collate(items)
    if not isinstance(batch, dict):
        raise ConfigError(f"dataset items must be dicts such as {{'image': ..., 'label': ...}}, "
                          f"got {type(items[0]).__name__}")
    return batch


class BatchStream:
    """Endless, resumable per-process batches.

    Args:
        data: ``(M, C, H, W)`` image tensor, map-style dataset of item dicts, or an
            ``IterableDataset`` of item dicts.
        batch_size: Items per batch and process.
        seed: Seed of the epoch permutations (tensor and map-style data).
        rank: This process's index.
        world: Number of processes.
        num_workers: DataLoader worker processes (0 reads in the training process).

    Raises:
        ConfigError: Data with fewer items than one global batch.

    Examples:
        >>> import torch, tokenkit as tk
        >>> stream = BatchStream(torch.rand(10, 3, 8, 8), batch_size=4, seed=0)
        >>> stream.next()["image"].shape
        torch.Size([4, 3, 8, 8])
        >>> _ = stream.next(); last = stream.next()  # 2 full batches per epoch: this one starts epoch 1
        >>> stream.state_dict()
        {'epoch': 1, 'offset': 1}

        A resumed stream continues where a saved position says:

        >>> resumed = BatchStream(stream.data, batch_size=4, seed=0)
        >>> resumed.load_state_dict({"epoch": 1, "offset": 0})
        >>> torch.equal(resumed.next()["image"], last["image"])
        True

        Two processes with batch 2 see the images one process with batch 4 sees:

        >>> ds = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=8, size=16))
        >>> one = BatchStream(ds, 4).next()["key"]
        >>> rank0, rank1 = (BatchStream(ds, 2, rank=rank, world=2).next()["key"] for rank in (0, 1))
        >>> len(one), rank0 + rank1 == one
        (4, True)
    """

    def __init__(self, data: Any, batch_size: int, *, seed: int = 0, rank: int = 0, world: int = 1,
                 num_workers: int = 0) -> None:
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.rank, self.world, self.num_workers = rank, world, num_workers
        self.iterable = isinstance(data, IterableDataset)
        self.epoch, self.offset = 0, 0
        self._iterator: Iterator[dict] | None = None
        if not self.iterable and len(data) < batch_size * world:
            raise ConfigError(f"the data has {len(data)} items, fewer than one global batch "
                              f"({batch_size} per process x {world} processes)")

    # ---- position -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        """``{"epoch", "offset"}``: the epoch and the batches already taken from it."""
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at a saved position."""
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._iterator = None

    # ---- batches --------------------------------------------------------------------------------------------
    def order(self, epoch: int) -> torch.Tensor:
        """The seeded permutation of epoch ``epoch`` (tensor and map-style data)."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return torch.randperm(len(self.data), generator=g)

    def _batches_per_epoch(self) -> int:
        return len(self.data) // (self.batch_size * self.world)

    def _indices(self, epoch: int, batch: int) -> torch.Tensor:
        start = (batch * self.world + self.rank) * self.batch_size
        return self.order(epoch)[start : start + self.batch_size]

    def gather(self, indices: torch.Tensor) -> dict[str, Any]:
        """The batch of the items at ``indices`` (tensor and map-style data)."""
        if isinstance(self.data, torch.Tensor):
            return {"image": self.data[indices]}
        self._set_epoch()
        return as_batch([self.data[int(i)] for i in indices])

    def _set_epoch(self) -> None:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(self.epoch)

    def _loader_generator(self) -> torch.Generator:
        """The DataLoader's own seed source: without one it draws from the global random state,
        which would make training randomness depend on when loaders were opened (and break resume)."""
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch + 1)

    def _open(self) -> Iterator[dict]:
        """A fresh iterator over the rest of the current epoch."""
        self._set_epoch()
        if self.iterable:
            loader = DataLoader(self.data, batch_size=self.batch_size, num_workers=self.num_workers,
                                collate_fn=as_batch, drop_last=True, generator=self._loader_generator())
            iterator = iter(loader)
            for _ in range(self.offset):
                next(iterator, None)
            return iterator
        batches = [self._indices(self.epoch, b).tolist() for b in range(self.offset, self._batches_per_epoch())]
        loader = DataLoader(self.data, batch_sampler=batches, num_workers=self.num_workers, collate_fn=as_batch,
                            generator=self._loader_generator())
        return iter(loader)

    def next(self) -> dict[str, Any]:
        """The next batch (moves on to the next epoch when this one is used up)."""
        if isinstance(self.data, torch.Tensor) or (not self.iterable and self.num_workers == 0):
            if self.offset >= self._batches_per_epoch():
                self.epoch, self.offset = self.epoch + 1, 0
            batch = self.gather(self._indices(self.epoch, self.offset))
            self.offset += 1
            return batch
        if self._iterator is None:
            self._iterator = self._open()
        batch = next(self._iterator, None)
        if batch is None and self.offset > 0:  # the epoch is used up: start the next one
            self.epoch, self.offset = self.epoch + 1, 0
            self._iterator = self._open()
            batch = next(self._iterator, None)
        if batch is None:
            raise ConfigError(f"the dataset yields no full batch of {self.batch_size} items "
                              f"(process {self.rank} of {self.world}); use a smaller batch_size or more data")
        self.offset += 1
        return batch

    def first(self, count: int) -> dict[str, Any]:
        """A fixed batch of up to ``count`` items (the first of epoch 0) for sample grids."""
        if not self.iterable:
            return self.gather(torch.arange(min(count, len(self.data))))
        items = []
        for item in self.data:
            items.append(item)
            if len(items) == count:
                break
        return as_batch(items)
