"""Pre-tokenize an image dataset once, for generator training (the official ``scripts/pretokenization.py``).

A frozen tokenizer turns every image (centre crop: the dataset is put in eval
mode) and, with ``flip=True``, its horizontal mirror into token ids. The result
is one file that the [`tokens`][tokenkit.datasets.tokens.Tokens] dataset reads:

* ``.safetensors``: ``tokens`` ``(M, N)`` int64, ``labels`` ``(M,)`` int64 and the
  item keys (``keys`` + ``key_offsets``, see
  [`encode_keys`][tokenkit.datasets.tokens.encode_keys]; a flipped copy has the key
  of its original plus ``#flip``), with header metadata ``format``
  (``"tokenkit.tokens"``), ``count``, ``num_tokens``, ``codebook_size``, ``flip``,
  ``tokenizer`` (the spec JSON, when the tokenizer has a spec) and ``dataset``
  (the dataset part as JSON, when it is a registered part).
* ``.jsonl``: the official format, one ``{"class_id": int, "tokens": [int, ...]}``
  per line (no keys, no metadata).

Order of the rows: batch by batch in dataset order; within a batch of ``B``
images, the ``B`` originals, then (with ``flip=True``) their ``B`` flipped copies,
as the official script does. So ``M = 2 x images`` with flips.

The file is written once, at the end, atomically: an error or an interrupt
while tokenizing or writing leaves no partial file (and an existing file as it was).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import IterableDataset

from tokenkit.datasets.tokens import encode_keys, write_jsonl
from tokenkit.errors import ConfigError, ContractError
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.specs import TokenizerSpec
from tokenkit.train.data import batches_once
from tokenkit.weights.io import save_safetensors

OUTPUT_SUFFIXES = (".safetensors", ".jsonl")
"""Output formats of [`pretokenize`][tokenkit.train.pretokenize.pretokenize], chosen by suffix."""

FLIP_SUFFIX = "#flip"
"""Appended to the key of an image to name its flipped copy."""


def _check_tokenizer(tokenizer: Any) -> int:
    """The codebook size of a tokenizer that gives one id per token, or a clear error."""
    if not isinstance(tokenizer, Tokenizer):
        raise ConfigError(f"pretokenize needs a tokenizer (tk.Tokenizer), got {type(tokenizer).__name__}")
    codebook_size = tokenizer.codebook_size
    if codebook_size is None:
        raise ConfigError("the tokenizer's bottleneck is continuous (codebook_size None): it has no token ids to "
                          "pre-tokenize; use a discrete quantizer (vq, fsq, ...)")
    num_codebooks = tokenizer.num_codebooks
    if num_codebooks != 1:
        raise ConfigError(f"the tokenizer gives {num_codebooks} ids per token (a residual / multi-codebook "
                          "quantizer); pre-tokenized files and the MaskGIT generator take one id per token")
    return int(codebook_size)


def _device_of(module: Any) -> torch.device:
    if isinstance(module, nn.Module):
        for tensor in module.parameters():
            return tensor.device
    return torch.device("cpu")


def _dataset_json(dataset: Any) -> str | None:
    """The dataset as a Part dict JSON (``{"part": name, "config": {...}}``), or ``None``."""
    name, config = getattr(dataset, "part_name", None), getattr(dataset, "config", None)
    if name is None or not dataclasses.is_dataclass(config):
        return None
    try:
        return json.dumps({"part": name, "config": dataclasses.asdict(config)})
    except (TypeError, ValueError):
        return None


def _ids(tokenizer: Any, images: torch.Tensor, codebook_size: int) -> torch.Tensor:
    ids = tokenizer.tokenize(images)
    if isinstance(ids, torch.Tensor) and ids.ndim == 3 and ids.shape[1] == 1:
        ids = ids[:, 0]  # the official (B, 1, N)
    if not isinstance(ids, torch.Tensor) or ids.ndim != 2 or ids.shape[0] != images.shape[0] or \
            ids.dtype.is_floating_point:
        raise ContractError(f"tokenizer.tokenize must return integer ids (B, N) for B = {images.shape[0]} images, "
                            f"got {getattr(ids, 'dtype', type(ids).__name__)} {tuple(getattr(ids, 'shape', ()))}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= codebook_size):
        raise ContractError(f"tokenizer.tokenize returned ids outside [0, {codebook_size})")
    return ids.to(torch.int64)


def pretokenize(tokenizer: Any, dataset: Any, output: str | os.PathLike, *, batch_size: int = 64, flip: bool = True,
                num_workers: int = 0, progress: bool = True, device: torch.device | str | None = None,
                allow_unlabelled: bool = False) -> dict[str, Any]:
    """Tokenize every image of ``dataset`` (and its flipped copy) into one file for generator training.

    Args:
        tokenizer: A discrete tokenizer (``tokenize(images (B, C, H, W)) -> (B, N)`` int64 ids),
            e.g. ``tk.build("titok-l32", pretrained=...)``. Put in eval mode while it runs.
        dataset: An image dataset (items ``{"image", "label", "key"}``), map-style or
            iterable; put in eval mode (centre crops, no random flip) while it is read.
            An endless one (``webdataset`` with ``resample=True``) is refused.
        output: ``.safetensors`` (tokenkit, with keys and metadata) or ``.jsonl``
            (the official format); see the module docstring.
        batch_size: Images per ``tokenize`` call (``2 x batch_size`` with flips).
        flip: Also tokenize the horizontally flipped copy of every image (official: yes).
        num_workers: DataLoader worker processes.
        progress: Show a tqdm progress bar.
        device: Device to tokenize on; the tokenizer is moved there. Default: the tokenizer's.
        allow_unlabelled: Accept items with label -1 (else refused: a class-conditional
            generator needs labels).

    Returns:
        ``{"count": M, "num_tokens": N, "codebook_size": K, "path": str, "seconds": float}``.

    Raises:
        ConfigError: A continuous tokenizer (no ids), one with several ids per token
            (``num_codebooks > 1``), an unknown output suffix, an unlabelled item without
            ``allow_unlabelled``, an empty or endless dataset, or items without ``"image"``.
        ContractError: Images the tokenizer does not take (size, range), or bad ids.

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> from tokenkit.train.pretokenize import pretokenize
        >>> tok = tk.build("titok-tiny")
        >>> images = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=3, size=32))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     info = pretokenize(tok, images, f"{tmp}/tokens.safetensors", progress=False)
        ...     ds = tk.build_part("dataset", tk.Part("tokens", path=info["path"]))
        ...     item = ds[3]
        >>> info["count"], info["num_tokens"], info["codebook_size"], item["key"], item["label"]
        (6, 8, 256, 'astronaut/0/0#flip', 0)
    """
    start = time.perf_counter()
    codebook_size = _check_tokenizer(tokenizer)
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"output {str(output)!r} must end in {' or '.join(OUTPUT_SUFFIXES)}")
    if batch_size < 1 or num_workers < 0:
        raise ConfigError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
    if getattr(getattr(dataset, "config", None), "resample", False):
        raise ConfigError("the dataset resamples shards forever (resample=True); "
                          "pre-tokenize one pass (resample=False)")
    device = torch.device(device) if device is not None else _device_of(tokenizer)
    if isinstance(tokenizer, nn.Module):
        tokenizer.to(device)
    tokenizer_mode = getattr(tokenizer, "training", None)
    if callable(getattr(tokenizer, "eval", None)):
        tokenizer.eval()
    tokens: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    keys: list[str] | None = []
    reader = None
    try:
        # in order, in eval mode (centre crops), the dataset's mode restored afterwards
        reader = batches_once(dataset, batch_size, num_workers=num_workers, pin_memory=device.type == "cuda")
        batches: Any = reader
        if progress:
            from tqdm.auto import tqdm

            total = None if isinstance(dataset, IterableDataset) else math.ceil(len(dataset) / batch_size)
            batches = tqdm(batches, total=total, desc="pretokenize", unit="batch")
        with torch.no_grad():
            for batch in batches:
                if "image" not in batch:
                    raise ConfigError("pretokenize needs an image dataset (items {'image', 'label', 'key'}), got "
                                      f"{sorted(batch)}")
                images = batch["image"].to(device, non_blocking=True)
                label = torch.as_tensor(batch.get("label", torch.full((len(images),), -1))).to(torch.int64).cpu()
                if not allow_unlabelled and bool((label < 0).any()):
                    raise ConfigError("the dataset has unlabelled items (label -1); a class-conditional generator "
                                      "needs labels (image-folder: labels=True), or pass allow_unlabelled=True")
                if flip:
                    images = torch.cat([images, images.flip(-1)])
                ids = _ids(tokenizer, images, codebook_size).cpu()
                tokens.append(ids)
                labels.append(torch.cat([label, label]) if flip else label)
                batch_keys = batch.get("key")
                if keys is not None and isinstance(batch_keys, (list, tuple)) and len(batch_keys) == len(label):
                    keys.extend(str(k) for k in batch_keys)
                    if flip:
                        keys.extend(f"{k}{FLIP_SUFFIX}" for k in batch_keys)
                else:
                    keys = None
    finally:
        if reader is not None:
            reader.close()  # restores the dataset's mode now, also after an error
        if tokenizer_mode is not None:
            tokenizer.train(tokenizer_mode)
    if not tokens:
        raise ConfigError("the dataset yielded no images")
    all_tokens, all_labels = torch.cat(tokens), torch.cat(labels)
    count, num_tokens = all_tokens.shape
    if suffix == ".jsonl":
        write_jsonl(output, all_tokens, all_labels)
    else:
        metadata = {"format": "tokenkit.tokens", "count": str(count), "num_tokens": str(num_tokens),
                    "codebook_size": str(codebook_size), "flip": str(bool(flip)).lower()}
        if isinstance(tokenizer.spec, TokenizerSpec):
            metadata["tokenizer"] = tokenizer.spec.to_json()
        dataset_json = _dataset_json(dataset)
        if dataset_json is not None:
            metadata["dataset"] = dataset_json
        tensors = {"tokens": all_tokens, "labels": all_labels, **(encode_keys(keys) if keys else {})}
        save_safetensors(tensors, output, metadata)
    return {"count": count, "num_tokens": num_tokens, "codebook_size": codebook_size, "path": str(output),
            "seconds": time.perf_counter() - start}
