"""Pre-tokenized images for generator training: one token sequence (or continuous codes) per item,
with a class label and optionally a caption.

Two file formats are read, chosen by suffix (or ``format``):

* **safetensors** (``.safetensors``), as written by
  [`pretokenize`][tokenkit.train.pretokenize.pretokenize]: tensors ``tokens``
  ``(M, N)`` (any integer dtype, read as int64) and/or ``codes`` ``(M, N, C)`` (float,
  read as float32: the continuous codes of a VAE tokenizer, for MaskGen-KL), ``labels``
  ``(M,)`` (optional; without it every label is -1), optionally the item keys as ``keys``
  (uint8, the UTF-8 bytes of all keys concatenated) with ``key_offsets`` ``(M + 1,)``
  int64 (key ``i`` is ``keys[key_offsets[i]:key_offsets[i + 1]]``), and optionally
  captions the same way as ``texts`` + ``text_offsets``
  ([`encode_texts`][tokenkit.datasets.tokens.encode_texts]). The header metadata
  (tokenizer spec, codebook size, ...) is kept as ``dataset.metadata``.
* **JSONL** (``.jsonl``), the official format of ``scripts/pretokenization.py`` in
  [bytedance/1d-tokenizer](https://github.com/bytedance/1d-tokenizer): one
  ``{"class_id": int, "tokens": [int, ...]}`` per line. ``tokens`` may also be
  nested as ``[[int, ...]]`` (shape ``(1, N)``, as the official TiTok ``encode``
  returns it); it is flattened. An optional ``"key"`` string names the item and an
  optional ``"text"`` string is its caption (every line or none); blank lines are skipped.

The whole file is read into memory once, as one ``(M, N)`` int64 tensor (ImageNet
with flips at 32 tokens is about 650 MB), so reading an item is an index.
"""

from __future__ import annotations

import array
import dataclasses
import itertools
import json
import os
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch.utils.data import Dataset

from tokenkit.datasets.base import DatasetModes, sequence_index
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.registry import register
from tokenkit.weights.io import atomic_write, read_safetensors_metadata, save_safetensors

TokensFormat = Literal["auto", "safetensors", "jsonl"]
"""File format of a ``tokens`` dataset; ``"auto"`` picks it by suffix (``.jsonl``, else safetensors)."""

JSONL_SUFFIXES = (".jsonl",)
"""Suffixes read (and, by [`pretokenize`][tokenkit.train.pretokenize.pretokenize], written) as JSONL."""


@dataclasses.dataclass(frozen=True)
class TokensConfig:
    """Options of the ``tokens`` dataset.

    Raises:
        ValueError: An unknown ``format`` or a non-positive ``num_tokens`` / ``codebook_size``.

    Examples:
        >>> TokensConfig(path="runs/tokens.jsonl").resolved_format
        'jsonl'
        >>> TokensConfig(path="runs/tokens.safetensors", num_tokens=32, codebook_size=4096).resolved_format
        'safetensors'
        >>> import tempfile, tokenkit as tk
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     config = TokensConfig.example(tmp, format="jsonl", num_tokens=4)
        ...     ds = tk.build_part("dataset", tk.Part("tokens", path=config.path, format="jsonl", num_tokens=4))
        >>> len(ds), ds[0]["tokens"].shape
        (5, torch.Size([4]))
    """

    path: str = ""
    """The ``.safetensors`` or ``.jsonl`` file (required; an unset path builds an empty placeholder)."""
    format: TokensFormat = "auto"
    """File format: ``"auto"`` (by suffix), ``"safetensors"`` or ``"jsonl"``."""
    num_tokens: int | None = None
    """Expected tokens per image ``N``; a file with another count is refused (``None``: any)."""
    codebook_size: int | None = None
    """Codebook size ``K`` of the generator; a file with an id ``>= K`` is refused (``None``: no bound)."""
    token_dim: int | None = None
    """Expected channels per token ``C`` of a file of continuous ``codes``; another width is refused (``None``: any)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", os.fspath(self.path))
        if self.format not in ("auto", "safetensors", "jsonl"):
            raise ValueError(f"format must be 'auto', 'safetensors' or 'jsonl', got {self.format!r}")
        for name in ("num_tokens", "codebook_size", "token_dim"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive (or None), got {value}")

    @property
    def resolved_format(self) -> str:
        """``"safetensors"`` or ``"jsonl"``: ``format``, or the one the suffix of ``path`` names."""
        if self.format != "auto":
            return self.format
        return "jsonl" if Path(self.path).suffix.lower() in JSONL_SUFFIXES else "safetensors"

    @classmethod
    def example(cls, directory: str | os.PathLike, **options) -> TokensConfig:
        """Write five tiny labelled token sequences (``N = 4``, ids below 16) into ``directory``; their config.

        With ``format="jsonl"`` among ``options`` the file is official JSONL, else safetensors with keys.
        """
        gen = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, 16, (5, 4), generator=gen)
        labels = torch.tensor([0, 1, 2, 0, 1])
        keys = [f"img{i}" for i in range(5)]
        if options.get("format") == "jsonl":
            path = Path(directory) / "tokens.jsonl"
            write_jsonl(path, tokens, labels)
        else:
            path = Path(directory) / "tokens.safetensors"
            save_safetensors({"tokens": tokens, "labels": labels, **encode_keys(keys)}, path,
                             {"num_tokens": "4", "codebook_size": "16", "count": "5"})
        return cls(**{"path": str(path), **options})


# ---- file formats -----------------------------------------------------------------------------------------------

def encode_keys(keys: list[str]) -> dict[str, torch.Tensor]:
    """Item keys as safetensors tensors: ``keys`` (uint8, the UTF-8 bytes concatenated), ``key_offsets`` ``(M + 1,)``.

    Examples:
        >>> decode_keys(**encode_keys(["a", "", "ü/b"]))
        ['a', '', 'ü/b']
    """
    encoded = [k.encode("utf-8") for k in keys]
    offsets = torch.zeros(len(encoded) + 1, dtype=torch.int64)
    offsets[1:] = torch.tensor([len(b) for b in encoded], dtype=torch.int64).cumsum(0)
    data = torch.frombuffer(bytearray(b"".join(encoded)), dtype=torch.uint8) if offsets[-1] else \
        torch.zeros(0, dtype=torch.uint8)
    return {"keys": data, "key_offsets": offsets}


def decode_keys(keys: torch.Tensor, key_offsets: torch.Tensor) -> list[str]:
    """Inverse of [`encode_keys`][tokenkit.datasets.tokens.encode_keys].

    Raises:
        ValueError: Not uint8 bytes and int64 offsets from 0, non-decreasing, up to the byte count.

    Examples:
        >>> encoded = encode_keys(["n01440764/0001", "n01443537/0002"])
        >>> encoded["key_offsets"].tolist()
        [0, 14, 28]
        >>> decode_keys(encoded["keys"], encoded["key_offsets"])
        ['n01440764/0001', 'n01443537/0002']
    """
    if keys.dtype != torch.uint8 or keys.ndim != 1 or key_offsets.dtype != torch.int64 or key_offsets.ndim != 1:
        raise ValueError(f"keys must be uint8 (L,) and key_offsets int64 (M + 1,), got {keys.dtype} "
                         f"{tuple(keys.shape)} and {key_offsets.dtype} {tuple(key_offsets.shape)}")
    bounds = key_offsets.tolist()
    if not bounds or bounds[0] != 0 or bounds[-1] != len(keys) or any(a > b for a, b in itertools.pairwise(bounds)):
        raise ValueError("key_offsets must run from 0 to len(keys) without decreasing")
    data = keys.numpy().tobytes()
    return [data[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]


def encode_texts(texts: list[str]) -> dict[str, torch.Tensor]:
    """Captions as safetensors tensors: ``texts`` (uint8, the UTF-8 bytes concatenated), ``text_offsets`` ``(M + 1,)``
    (the layout of [`encode_keys`][tokenkit.datasets.tokens.encode_keys]).

    Examples:
        >>> encoded = encode_texts(["a red rocket", "a cat"])
        >>> sorted(encoded), encoded["text_offsets"].tolist()
        (['text_offsets', 'texts'], [0, 12, 17])
        >>> decode_keys(encoded["texts"], encoded["text_offsets"])
        ['a red rocket', 'a cat']
    """
    encoded = encode_keys(texts)
    return {"texts": encoded["keys"], "text_offsets": encoded["key_offsets"]}


def write_jsonl(path: str | os.PathLike, tokens: torch.Tensor, labels: torch.Tensor,
                texts: list[str] | None = None) -> None:
    """Write the official JSONL (``{"class_id": int, "tokens": [int, ...]}`` per line) atomically.

    Args:
        path: Output file.
        tokens: ``(M, N)`` integer ids.
        labels: ``(M,)`` integer class ids.
        texts: ``M`` captions, written as a ``"text"`` field of each line (``None``: none).

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "tokens.jsonl"
        ...     write_jsonl(path, torch.tensor([[5, 1, 7], [0, 2, 2]]), torch.tensor([3, 9]))
        ...     print(path.read_text(), end="")
        {"class_id": 3, "tokens": [5, 1, 7]}
        {"class_id": 9, "tokens": [0, 2, 2]}
    """
    def line(label: int, row: list[int], text: str | None) -> str:
        record = {"class_id": label, "tokens": row} if text is None else {"class_id": label, "tokens": row,
                                                                          "text": text}
        return json.dumps(record, ensure_ascii=False) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(line(label, row, None if texts is None else texts[i])
                         for i, (label, row) in enumerate(zip(labels.tolist(), tokens.tolist())))

    atomic_write(Path(path), write)


class _Contents(NamedTuple):
    """What a tokens file holds (before validation)."""

    tokens: torch.Tensor | None
    codes: torch.Tensor | None
    labels: torch.Tensor | None
    keys: list[str] | None
    texts: list[str] | None
    metadata: dict[str, str]
    lines: list[int] | None = None


def _strings(tensors: dict[str, torch.Tensor], data: str, offsets: str, path: Path) -> list[str] | None:
    """The strings stored as ``data`` + ``offsets`` (``None`` when neither is there)."""
    if data not in tensors and offsets not in tensors:
        return None
    if not (data in tensors and offsets in tensors):
        raise ConfigError(f"tokens file {str(path)!r} must hold both '{data}' and '{offsets}', or neither")
    try:
        return decode_keys(tensors[data], tensors[offsets])
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"tokens file {str(path)!r}: unreadable {data} ({err})") from None


def _read_safetensors(path: Path) -> _Contents:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path), device="cpu")
        metadata = read_safetensors_metadata(path)
    except (SafetensorError, OSError, ValueError, WeightsError) as err:
        raise ConfigError(f"tokens file {str(path)!r} is not a readable safetensors file "
                          f"(corrupt or truncated?): {err}") from None
    if "tokens" not in tensors and "codes" not in tensors:
        raise ConfigError(f"tokens file {str(path)!r} has no tensor 'tokens' (ids) or 'codes' (continuous) "
                          f"(found: {', '.join(sorted(tensors))})")
    return _Contents(tensors.get("tokens"), tensors.get("codes"), tensors.get("labels"),
                     _strings(tensors, "keys", "key_offsets", path), _strings(tensors, "texts", "text_offsets", path),
                     metadata)


def _read_jsonl(path: Path) -> _Contents:
    """The rows of an official JSONL file (plus optional ``key`` and ``text``), with the line number of each row."""
    ids, labels, lines = array.array("q"), array.array("q"), array.array("q")
    keys: list[str | None] = []
    texts: list[str | None] = []
    length = None
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict) or "class_id" not in record or "tokens" not in record:
                raise ConfigError(f'{where}: expected an object {{"class_id": int, "tokens": [int, ...]}}, '
                                  f"got {line.strip()[:80]!r}")
            row = record["tokens"]
            while isinstance(row, list) and len(row) == 1 and isinstance(row[0], list):
                row = row[0]  # the official (1, N) nesting
            label = record["class_id"]
            if not isinstance(row, list) or not row or any(isinstance(v, (list, bool)) for v in row[:1]) \
                    or isinstance(label, bool) or not isinstance(label, int):
                raise ConfigError(f"{where}: tokens must be a non-empty list of ints (or [[ints]]) and class_id an "
                                  f"int, got tokens {str(record['tokens'])[:60]} and class_id {label!r}")
            if length is None:
                length = len(row)
            elif len(row) != length:
                raise ConfigError(f"{where}: {len(row)} tokens, but earlier lines have {length} "
                                  "(every image must have the same token count)")
            try:
                ids.extend(row)
            except (TypeError, OverflowError):
                raise ConfigError(f"{where}: tokens must be integers, got {str(row)[:60]}") from None
            try:
                labels.append(label)
            except OverflowError:
                raise ConfigError(f"{where}: class_id {label} is out of range") from None
            lines.append(lineno)
            key, text = record.get("key"), record.get("text")
            if key is not None and not isinstance(key, str):
                raise ConfigError(f"{where}: key must be a string, got {key!r}")
            if text is not None and not isinstance(text, str):
                raise ConfigError(f"{where}: text must be a string (the caption), got {text!r}")
            if texts and (text is None) != (texts[-1] is None):
                raise ConfigError(f"{where}: {'no' if text is None else 'a'} text, unlike the line before "
                                  "(captions must be given on every line or on none)")
            keys.append(key)
            texts.append(text)
    count = len(labels)
    tokens = torch.frombuffer(ids, dtype=torch.int64).clone() if count else torch.zeros(0, dtype=torch.int64)
    label_tensor = torch.frombuffer(labels, dtype=torch.int64).clone() if count else torch.zeros(0, dtype=torch.int64)
    named = any(k is not None for k in keys)
    return _Contents(tokens.view(count, length or 0), None, label_tensor,
                     [str(i) if k is None else k for i, k in enumerate(keys)] if named else None,
                     texts if texts and texts[0] is not None else None, {}, lines.tolist())


# ---- dataset ----------------------------------------------------------------------------------------------------

@register("dataset", "tokens")
class Tokens(DatasetModes, Dataset):
    """Map-style dataset of pre-tokenized images, read into memory once.

    Items are ``{"tokens": (N,) int64, "label": int (-1 when unlabelled), "key": str}``
    (the key is the stored one, else the item index as text); a ``DataLoader``
    batches them into ``tokens (B, N)`` and ``label (B,)``:
    the batches a MaskGIT generator is trained on. A file of continuous codes gives
    ``"codes": (N, C) float32`` instead of ``"tokens"`` (MaskGen-KL's batches); a file
    with captions adds ``"text": str`` (batched into a list of ``B`` strings: MaskGen's
    batches ``{"tokens", "text"}``).
    Nothing is random: ``train()``, ``eval()`` and ``set_epoch()`` exist for the
    common dataset interface and change nothing (flips were tokenized in advance).

    Args:
        config: [`TokensConfig`][tokenkit.datasets.tokens.TokensConfig].

    Raises:
        ConfigError: The file is missing or unreadable; a JSONL line is not valid
            JSON or not ``{"class_id", "tokens"}`` (the error names file and line);
            token counts differ between items; an id is negative (or ``>= codebook_size``);
            codes are not finite floats ``(M, N, C)`` (or not ``token_dim`` wide);
            a label is below -1; the counts do not match ``num_tokens``.

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> from tokenkit.datasets.tokens import TokensConfig
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     ds = tk.build_part("dataset", tk.Part("tokens", path=TokensConfig.example(tmp).path))
        >>> item = ds[1]
        >>> len(ds), ds.num_tokens, item["tokens"].dtype, item["label"], item["key"]
        (5, 4, torch.int64, 1, 'img1')
    """

    Config = TokensConfig

    def __init__(self, config: TokensConfig) -> None:
        self.config = config
        self.tokens: torch.Tensor | None = torch.zeros(0, config.num_tokens or 0, dtype=torch.int64)
        """All token ids, ``(M, N)`` int64 (``None`` for a file of continuous codes only)."""
        self.codes: torch.Tensor | None = None
        """All continuous codes, ``(M, N, C)`` float32, or ``None`` (a file of ids)."""
        self.labels = torch.zeros(0, dtype=torch.int64)
        """All labels, ``(M,)`` int64 (-1 when unlabelled)."""
        self.keys: list[str] | None = None
        """Stored item keys, or ``None`` (then the key of item ``i`` is ``str(i)``)."""
        self.texts: list[str] | None = None
        """Stored captions (one per item), or ``None``."""
        self.metadata: dict[str, str] = {}
        """The safetensors header metadata (``{}`` for JSONL): ``tokenizer`` spec JSON, ``codebook_size``, ..."""
        if config.path:  # an unset path (the default config) builds an empty placeholder
            self._load(Path(config.path))

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"tokens file {str(path)!r} does not exist")
        if self.config.resolved_format == "jsonl":
            contents = _read_jsonl(path)
        else:
            contents = _read_safetensors(path)
        tokens, codes, labels, keys, texts, metadata, lines = contents

        def where(row: int) -> str:
            return f"{path}:{lines[row]}" if lines else f"{path} (item {row})"

        if tokens is not None:
            tokens = self._check_tokens(tokens, path, where)
        if codes is not None:
            codes = self._check_codes(codes, path, where)
        count, num_tokens = (tokens if tokens is not None else codes).shape[:2]
        if tokens is not None and codes is not None and tokens.shape[:2] != codes.shape[:2]:
            raise ConfigError(f"{str(path)!r} holds tokens {tuple(tokens.shape)} and codes {tuple(codes.shape)} "
                              "for different items or token counts")
        if count == 0:
            raise ConfigError(f"tokens file {str(path)!r} holds no items")
        if labels is None:
            labels = torch.full((count,), -1, dtype=torch.int64)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or tuple(labels.shape) != (count,):
            raise ConfigError(f"labels in {str(path)!r} must be integers of shape ({count},), "
                              f"got {labels.dtype} {tuple(labels.shape)}")
        labels = labels.to(torch.int64)
        if keys is not None and len(keys) != count:
            raise ConfigError(f"{str(path)!r} holds {len(keys)} keys for {count} items")
        if texts is not None and len(texts) != count:
            raise ConfigError(f"{str(path)!r} holds {len(texts)} texts for {count} items")
        bad_labels = (labels < -1).nonzero()
        if len(bad_labels):
            row = int(bad_labels[0])
            raise ConfigError(f"{where(row)}: label {int(labels[row])} (labels must be >= 0, or -1 for unlabelled)")
        if self.config.num_tokens is not None and num_tokens != self.config.num_tokens:
            raise ConfigError(f"{str(path)!r} holds {num_tokens} tokens per image, "
                              f"but num_tokens is {self.config.num_tokens}")
        self.tokens = None if tokens is None else tokens.contiguous()
        self.codes = None if codes is None else codes.contiguous()
        self.labels, self.keys, self.texts, self.metadata = labels, keys, texts, metadata

    def _check_tokens(self, tokens: torch.Tensor, path: Path, where: Any) -> torch.Tensor:
        """``tokens`` as ``(M, N)`` int64 ids in range, or a clear error."""
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise ConfigError(f"tokens in {str(path)!r} must be integers, got {tokens.dtype}")
        if tokens.ndim != 2:
            raise ConfigError(f"tokens in {str(path)!r} must be (M, N), got shape {tuple(tokens.shape)}")
        tokens = tokens.to(torch.int64)
        negative = (tokens < 0).any(1).nonzero()
        if len(negative):
            row = int(negative[0])
            raise ConfigError(f"{where(row)}: negative token id {int(tokens[row].min())} (ids must be >= 0)")
        if self.config.codebook_size is not None:
            over = (tokens >= self.config.codebook_size).any(1).nonzero()
            if len(over):
                row = int(over[0])
                raise ConfigError(f"{where(row)}: token id {int(tokens[row].max())} is outside the codebook "
                                  f"(codebook_size {self.config.codebook_size})")
        return tokens

    def _check_codes(self, codes: torch.Tensor, path: Path, where: Any) -> torch.Tensor:
        """``codes`` as ``(M, N, C)`` finite float32, or a clear error."""
        if not codes.dtype.is_floating_point or codes.ndim != 3:
            raise ConfigError(f"codes in {str(path)!r} must be floats of shape (M, N, C), "
                              f"got {codes.dtype} {tuple(codes.shape)}")
        codes = codes.to(torch.float32)
        bad = (~torch.isfinite(codes)).flatten(1).any(1).nonzero()
        if len(bad):
            raise ConfigError(f"{where(int(bad[0]))}: codes hold NaN / Inf")
        if self.config.token_dim is not None and codes.shape[2] != self.config.token_dim:
            raise ConfigError(f"{str(path)!r} holds codes of {codes.shape[2]} channels per token, "
                              f"but token_dim is {self.config.token_dim}")
        return codes

    @property
    def num_tokens(self) -> int:
        """Tokens per image ``N``."""
        return (self.tokens if self.tokens is not None else self.codes).shape[1]

    @property
    def token_dim(self) -> int | None:
        """Channels per token ``C`` of the continuous codes (``None``: a file of ids)."""
        return None if self.codes is None else self.codes.shape[2]

    @property
    def codebook_size(self) -> int | None:
        """``K`` from the config, else from the file's metadata, else ``None`` (always ``None`` for codes only)."""
        if self.tokens is None:
            return None
        if self.config.codebook_size is not None:
            return self.config.codebook_size
        value = self.metadata.get("codebook_size")
        return int(value) if value and value.isdigit() else None

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> dict:
        if not self.config.path:
            raise ConfigError("tokens dataset has no path configured (set `path`)")
        index = sequence_index(index, len(self), "token sequences")
        item: dict[str, Any] = {}
        if self.tokens is not None:
            item["tokens"] = self.tokens[index]
        if self.codes is not None:
            item["codes"] = self.codes[index]
        item["label"] = int(self.labels[index])
        item["key"] = self.keys[index] if self.keys is not None else str(index)
        if self.texts is not None:
            item["text"] = self.texts[index]
        return item
