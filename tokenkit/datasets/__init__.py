"""Datasets (part kind ``"dataset"``) and the official TiTok preprocessing.

Every image dataset yields ``{"image": (3, H, W) float in [0, 1], "label": int (-1 when
unlabelled), "key": str}`` and batches in a ``DataLoader`` into ``(B, 3, H, W)``. The
``tokens`` dataset yields pre-tokenized images for generator training instead:
``{"tokens": (N,) int64, "label": int, "key": str}``, batched into ``(B, N)``; see
[`pretokenize`][tokenkit.train.pretokenize.pretokenize].

| name | what | style |
| --- | --- | --- |
| ``image-folder`` | images under a folder, labels from sub-folders | map-style |
| ``webdataset`` | WebDataset tar shards (the official ImageNet layout) | iterable, split by shard |
| ``bundled`` | random crops of the six bundled photographs | map-style |
| ``tokens`` | token ids of pre-tokenized images (safetensors or official JSONL) | map-style, in memory |

A dataset part that reads files defines ``Config.example(directory)``, which
writes a few tiny files and returns a config reading them;
[`check_dataset`][tokenkit.testing.check_dataset] uses it.

Examples:
    >>> import torch, tokenkit as tk
    >>> ds = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=4, size=8))
    >>> next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))["image"].shape
    torch.Size([4, 3, 8, 8])
"""

from tokenkit.datasets.transforms import ImageDecodeError, Transform, decode_image, eval_transform, train_transform
from tokenkit.registry import import_submodules

__all__ = ["ImageDecodeError", "Transform", "decode_image", "eval_transform", "train_transform"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
