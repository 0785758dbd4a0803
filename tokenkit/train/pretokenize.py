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

Captions: when the dataset's items carry ``"text"`` (e.g. ``bundled`` with
``captions: true``), each row keeps its item's caption (a flipped copy its
original's): ``texts`` + ``text_offsets`` in safetensors
([`encode_texts`][tokenkit.datasets.tokens.encode_texts]), a ``"text"`` field per
JSONL line. Text-conditioned generators (MaskGen) train on them.

Continuous codes: a continuous tokenizer (``codebook_size`` None, e.g. a TA-TiTok
VAE) has no ids; its codes ``(M, N, C)`` float32 are stored as ``codes`` instead
of ``tokens`` (safetensors only; metadata ``token_dim``, ``codebook_size``
``"none"``), for MaskGen-KL. They are the encoder's codes in eval mode: the mean
of a Gaussian bottleneck (the official training samples a fresh posterior each
step). ``codes=True`` stores the (quantized) codes of a discrete tokenizer too;
``codes=False`` refuses a continuous tokenizer.

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

from tokenkit.datasets.tokens import encode_keys, encode_texts, write_jsonl
from tokenkit.errors import ConfigError, ContractError
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.specs import TokenizerSpec
from tokenkit.train.data import batches_once
from tokenkit.weights.io import save_safetensors

OUTPUT_SUFFIXES = (".safetensors", ".jsonl")
"""Output formats of [`pretokenize`][tokenkit.train.pretokenize.pretokenize], chosen by suffix."""

FLIP_SUFFIX = "#flip"
"""Appended to the key of an image to name its flipped copy."""


def _check_tokenizer(tokenizer: Any, codes: bool | None = False) -> int | None:
    """The codebook size of a tokenizer that gives one id per token (``None`` when codes are stored), or a
    clear error."""
    if not isinstance(tokenizer, Tokenizer):
        raise ConfigError(f"pretokenize needs a tokenizer (tk.Tokenizer), got {type(tokenizer).__name__}")
    codebook_size = tokenizer.codebook_size
    if codes or (codes is None and codebook_size is None):
        return None
    if codebook_size is None:
        raise ConfigError("the tokenizer's bottleneck is continuous (codebook_size None): it has no token ids to "
                          "pre-tokenize; store its continuous codes (codes=True, or the default codes=None) for a "
                          "continuous-token generator (maskgen-kl), or use a discrete quantizer (vq, fsq, ...)")
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


def _codes(tokenizer: Any, images: torch.Tensor) -> torch.Tensor:
    codes = tokenizer.encode(images).codes
    if not isinstance(codes, torch.Tensor) or codes.ndim != 3 or codes.shape[0] != images.shape[0] or \
            not codes.is_floating_point():
        raise ContractError(f"tokenizer.encode must give float codes (B, N, C) for B = {images.shape[0]} images, "
                            f"got {getattr(codes, 'dtype', type(codes).__name__)} {tuple(getattr(codes, 'shape', ()))}")
    if not bool(torch.isfinite(codes).all()):
        raise ContractError("tokenizer.encode gave NaN / Inf codes")
    return codes.float()


def _batch_texts(batch: dict[str, Any], count: int) -> list[str] | None:
    """The batch's captions (``"text"``), checked: ``count`` strings, or ``None`` when the items carry none."""
    texts = batch.get("text")
    if texts is None:
        return None
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)) or len(texts) != count \
            or not all(isinstance(t, str) for t in texts):
        raise ConfigError(f"the dataset's \"text\" must be one string per item ({count} in this batch), "
                          f"got {str(texts)[:80]}")
    return list(texts)


def pretokenize(tokenizer: Any, dataset: Any, output: str | os.PathLike, *, batch_size: int = 64, flip: bool = True,
                num_workers: int = 0, progress: bool = True, device: torch.device | str | None = None,
                allow_unlabelled: bool = False, codes: bool | None = None) -> dict[str, Any]:
    """Tokenize every image of ``dataset`` (and its flipped copy) into one file for generator training.

    Args:
        tokenizer: A discrete tokenizer (``tokenize(images (B, C, H, W)) -> (B, N)`` int64 ids),
            e.g. ``tk.build("titok-l32", pretrained=...)``, or a continuous one (its codes are stored,
            see ``codes``). Put in eval mode while it runs.
        dataset: An image dataset (items ``{"image", "label", "key"}``, optionally ``"text"``: its
            captions are stored too), map-style or iterable; put in eval mode (centre crops, no random
            flip) while it is read. An endless one (``webdataset`` with ``resample=True``) is refused.
        output: ``.safetensors`` (tokenkit, with keys and metadata) or ``.jsonl``
            (the official format); see the module docstring.
        batch_size: Images per ``tokenize`` call (``2 x batch_size`` with flips).
        flip: Also tokenize the horizontally flipped copy of every image (official: yes).
        num_workers: DataLoader worker processes.
        progress: Show a tqdm progress bar.
        device: Device to tokenize on; the tokenizer is moved there. Default: the tokenizer's.
        allow_unlabelled: Accept items with label -1 (else refused: a class-conditional
            generator needs labels). Captioned items (``"text"``) need no labels.
        codes: Store continuous codes ``(M, N, C)`` float32 (``tokenizer.encode(images).codes``)
            instead of ids: ``None`` (default) for a continuous tokenizer only, ``True`` always
            (``.safetensors`` only), ``False`` never (a continuous tokenizer is refused).

    Returns:
        ``{"count": M, "num_tokens": N, "codebook_size": K or None, "token_dim": C or None,
        "texts": whether captions were stored, "path": str, "seconds": float}``.

    Raises:
        ConfigError: A continuous tokenizer with ``codes=False``, one with several ids per token
            (``num_codebooks > 1``) unless codes are stored, an unknown output suffix, codes to
            ``.jsonl``, an unlabelled item without ``allow_unlabelled`` or a caption, an empty or
            endless dataset, items without ``"image"``, or captions on some items only.
        ContractError: Images the tokenizer does not take (size, range), or bad ids or codes.

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

        Captions (``"text"``) are kept, and a continuous tokenizer's codes are stored:

        >>> vae = tk.build("tatitok-tiny", quantizer="gaussian")
        >>> captioned = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=3, size=32, captions=True))
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     info = pretokenize(vae, captioned, f"{tmp}/codes.safetensors", progress=False)
        ...     item = tk.build_part("dataset", tk.Part("tokens", path=info["path"]))[3]
        >>> info["codebook_size"], info["token_dim"], info["texts"], sorted(item), item["codes"].shape
        (None, 16, True, ['codes', 'key', 'label', 'text'], torch.Size([8, 16]))
        >>> item["text"] == captioned[0]["text"]  # the flipped copy keeps its original's caption
        True
    """
    start = time.perf_counter()
    codebook_size = _check_tokenizer(tokenizer, codes)
    store_codes = codebook_size is None
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise ConfigError(f"output {str(output)!r} must end in {' or '.join(OUTPUT_SUFFIXES)}")
    if store_codes and suffix == ".jsonl":
        raise ConfigError(f"continuous codes are written to .safetensors only (the official JSONL holds ids), "
                          f"got {str(output)!r}")
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
    texts: list[str] | None = None
    first = True
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
                batch_texts = _batch_texts(batch, len(label))
                if first:
                    texts, first = ([] if batch_texts is not None else None), False
                elif (batch_texts is None) != (texts is None):
                    raise ConfigError("some of the dataset's items carry a caption (\"text\") and others none: "
                                      "captions are stored for every item or for none")
                if not allow_unlabelled and batch_texts is None and bool((label < 0).any()):
                    raise ConfigError("the dataset has unlabelled items (label -1); a class-conditional generator "
                                      "needs labels (image-folder: labels=True), or pass allow_unlabelled=True")
                if flip:
                    images = torch.cat([images, images.flip(-1)])
                if store_codes:
                    tokens.append(_codes(tokenizer, images).cpu())
                else:
                    tokens.append(_ids(tokenizer, images, codebook_size).cpu())
                labels.append(torch.cat([label, label]) if flip else label)
                if texts is not None:
                    texts.extend(batch_texts + batch_texts if flip else batch_texts)
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
    count, num_tokens = all_tokens.shape[:2]
    token_dim = all_tokens.shape[2] if store_codes else None
    if suffix == ".jsonl":
        write_jsonl(output, all_tokens, all_labels, texts)
    else:
        metadata = {"format": "tokenkit.tokens", "count": str(count), "num_tokens": str(num_tokens),
                    "codebook_size": str(codebook_size).lower(), "flip": str(bool(flip)).lower(),
                    "texts": str(texts is not None).lower()}
        if store_codes:
            metadata["token_dim"] = str(token_dim)
        if isinstance(tokenizer.spec, TokenizerSpec):
            metadata["tokenizer"] = tokenizer.spec.to_json()
        dataset_json = _dataset_json(dataset)
        if dataset_json is not None:
            metadata["dataset"] = dataset_json
        tensors = {"codes" if store_codes else "tokens": all_tokens, "labels": all_labels,
                   **(encode_keys(keys) if keys else {}), **(encode_texts(texts) if texts is not None else {})}
        save_safetensors(tensors, output, metadata)
    return {"count": count, "num_tokens": num_tokens, "codebook_size": codebook_size, "token_dim": token_dim,
            "texts": texts is not None, "path": str(output), "seconds": time.perf_counter() - start}
