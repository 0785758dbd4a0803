"""Reference statistics files and ADM-format ``.npz`` sample batches.

A reference-statistics file is an ``.npz`` with ADM's keys (``mu``, ``sigma``
for pool-3; ``mu_s``, ``sigma_s`` for the spatial sFID features), optionally
``pool`` (the reference's pool-3 features, for KID and precision / recall), and
``tokenkit`` (a JSON string: protocol, feature-weights fingerprint, image count,
data source). ADM's reference batches (e.g. ``VIRTUAL_imagenet256_labeled.npz``)
are read as given: their statistics come from the TF graph of ADM's suite, so
they are accepted for the ``adm`` protocol (and ``titok``'s generation metrics,
which are ADM's); their images (``arr_0``) give KID / precision / recall.

A sample batch is what ADM's evaluator reads: ``arr_0`` ``(N, H, W, 3)`` uint8
(and here ``arr_1``, the class labels). [`NpzWriter`][tokenkit.evaluation.reference.NpzWriter]
streams it to disk so 50,000 samples never sit in memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tokenkit.errors import ConfigError
from tokenkit.evaluation.statistics import FeatureStatistics
from tokenkit.weights.io import atomic_write

ADM_FEATURES = "adm-tf-graph"
"""Feature fingerprint recorded for statistics from ADM's TF graph (``classify_image_graph_def.pb``)."""


@dataclasses.dataclass
class ReferenceStatistics:
    """Statistics of a reference image set.

    Attributes:
        pool: ``(mu, sigma)`` of pool-3 features, or the accumulator itself.
        spatial: ``(mu, sigma)`` of the spatial features (sFID), or ``None``.
        features: ``(N, 2048)`` pool-3 features for KID / precision-recall, or ``None``.
        info: Provenance: ``protocol``, ``features_sha256``, ``count``, ``source``, ...
        images: Path of an ``.npz`` whose ``arr_0`` holds the reference images (ADM batches), or ``None``.
    """

    pool: FeatureStatistics | tuple[np.ndarray, np.ndarray]
    spatial: FeatureStatistics | tuple[np.ndarray, np.ndarray] | None
    features: torch.Tensor | None
    info: dict[str, Any]
    images: str | None = None

    @property
    def count(self) -> int | None:
        """Images behind the statistics (``None`` when a file does not say)."""
        return self.info.get("count")

    def check(self, protocol: str, features_sha256: str) -> None:
        """Refuse statistics made under another protocol or with other Inception weights.

        Raises:
            ConfigError: Naming both protocols or both fingerprints.
        """
        theirs = self.info.get("protocol")
        if theirs is not None and theirs != protocol:
            raise ConfigError(f"reference statistics {self.info.get('path', '')} were computed with protocol "
                              f"{theirs!r}, this evaluation uses {protocol!r}; recompute them with "
                              f"--protocol {protocol} (tokenkit eval reference ...)")
        their_features = self.info.get("features_sha256")
        if their_features == ADM_FEATURES:
            return  # ADM's TF graph: the 2015 Inception constants themselves
        if their_features is not None and their_features != features_sha256:
            raise ConfigError(f"reference statistics {self.info.get('path', '')} were computed with Inception "
                              f"weights {their_features[:16]}..., this evaluation uses {features_sha256[:16]}...; "
                              "features of different networks are not comparable (recompute the reference)")


def _arrays(stats: FeatureStatistics | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return stats.to_numpy() if isinstance(stats, FeatureStatistics) else stats


def save_reference(reference: ReferenceStatistics, path: str | os.PathLike) -> Path:
    """Write ``reference`` as an ADM-compatible ``.npz`` (atomically).

    Returns:
        The path written (``.npz`` appended when missing, as numpy does).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    mu, sigma = _arrays(reference.pool)
    arrays: dict[str, np.ndarray] = {"mu": mu, "sigma": sigma,
                                     "tokenkit": np.array(json.dumps({k: v for k, v in reference.info.items()
                                                                      if k != "path"}))}
    if reference.spatial is not None:
        arrays["mu_s"], arrays["sigma_s"] = _arrays(reference.spatial)
    if reference.features is not None:
        arrays["pool"] = reference.features.float().cpu().numpy()

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)
    return path


def load_reference(path: str | os.PathLike) -> ReferenceStatistics:
    """Read a tokenkit reference file or an ADM reference batch.

    Raises:
        ConfigError: Missing file, not an ``.npz``, or neither statistics nor images inside.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"reference statistics file {str(path)!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        keys = set(data.files)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ConfigError(f"{path} is not a readable .npz file: {err}") from None
    images = str(path) if "arr_0" in keys else None
    if "mu" not in keys or "sigma" not in keys:
        if images is None:
            raise ConfigError(f"{path} holds neither statistics (mu, sigma) nor images (arr_0); keys: {sorted(keys)}")
        raise ConfigError(f"{path} holds images (arr_0) but no statistics; compute them with "
                          f"`tokenkit eval reference {path} --out REF.npz` (the protocol's features)")
    if "tokenkit" in keys:
        info = json.loads(str(data["tokenkit"]))
    else:  # an ADM reference batch
        count = None
        if images is not None:
            with zipfile.ZipFile(path) as archive, archive.open("arr_0.npy") as f:
                count = int(_npy_header(f)[0][0])
        info = {"protocol": "adm", "features_sha256": ADM_FEATURES, "count": count, "source": "ADM reference batch"}
    info["path"] = str(path)
    spatial = (data["mu_s"], data["sigma_s"]) if {"mu_s", "sigma_s"} <= keys else None
    features = torch.from_numpy(data["pool"]) if "pool" in keys else None
    return ReferenceStatistics(pool=(data["mu"].astype(np.float64), data["sigma"].astype(np.float64)),
                               spatial=None if spatial is None else (spatial[0].astype(np.float64),
                                                                     spatial[1].astype(np.float64)),
                               features=features, info=info, images=images)


def _npy_header(f) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of an ``.npy`` stream positioned at its start."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f)
    raise ConfigError(f"unsupported .npy format version {version}")


def read_npz_images(path: str | os.PathLike, batch_size: int = 64):
    """Iterate ``arr_0`` of an ADM-format ``.npz`` in ``(B, 3, H, W)`` uint8 batches without loading it whole."""
    with zipfile.ZipFile(path) as archive:
        if "arr_0.npy" not in archive.namelist():
            raise ConfigError(f"{path} has no arr_0 (images)")
        with archive.open("arr_0.npy") as f:
            shape, fortran, dtype = _npy_header(f)
            if fortran or dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
                raise ConfigError(f"{path}: arr_0 must be (N, H, W, 3) uint8 in C order, got {shape} {dtype}")
            per_image = int(np.prod(shape[1:]))
            for start in range(0, shape[0], batch_size):
                n = min(batch_size, shape[0] - start)
                buffer = f.read(n * per_image)
                if len(buffer) != n * per_image:
                    raise ConfigError(f"{path}: arr_0 is truncated at image {start}")
                batch = np.frombuffer(buffer, dtype=np.uint8).reshape(n, *shape[1:])
                yield torch.from_numpy(batch.copy()).permute(0, 3, 1, 2)


class NpzWriter:
    """Stream ``(N, H, W, 3)`` uint8 images (``arr_0``) and labels (``arr_1``) into an ADM-format ``.npz``.

    The file is written under a temporary name and renamed when ``close`` sees
    all ``N`` images; an interrupted writer leaves no ``.npz`` behind.

    Args:
        path: Output ``.npz``.
        count: Number of images ``N`` (the header is written first).
        height: Image height.
        width: Image width.

    Examples:
        >>> import tempfile, numpy as np, torch
        >>> from tokenkit.evaluation.reference import NpzWriter
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     with NpzWriter(f"{tmp}/samples.npz", count=2, height=4, width=4) as writer:
        ...         writer.add(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.tensor([3, 7]))
        ...     data = np.load(f"{tmp}/samples.npz")
        ...     data["arr_0"].shape, data["arr_1"].tolist()
        ((2, 4, 4, 3), [3, 7])
    """

    def __init__(self, path: str | os.PathLike, count: int, height: int, width: int) -> None:
        import tempfile

        self.path = Path(path)
        self.count, self.shape = int(count), (int(count), int(height), int(width), 3)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self._zip = zipfile.ZipFile(self._tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self._f = self._zip.open("arr_0.npy", "w", force_zip64=True)
        np.lib.format.write_array_header_2_0(self._f, {"descr": "|u1", "fortran_order": False, "shape": self.shape})
        self._labels: list[np.ndarray] = []
        self.written = 0

    def add(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> None:
        """Append ``(B, 3, H, W)`` uint8 images (and their ``(B,)`` labels)."""
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != (3, *self.shape[1:3]):
            raise ValueError(f"images must be uint8 (B, 3, {self.shape[1]}, {self.shape[2]}), "
                             f"got {images.dtype} {tuple(images.shape)}")
        if self.written + len(images) > self.count:
            raise ValueError(f"NpzWriter was opened for {self.count} images, got more")
        self._f.write(np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy()).tobytes())
        self._labels.append(np.full(len(images), -1, np.int64) if labels is None
                            else labels.detach().cpu().numpy().astype(np.int64))
        self.written += len(images)

    def close(self) -> Path:
        """Finish the file (all ``count`` images must have been added) and move it into place."""
        self._f.close()
        try:
            if self.written != self.count:
                raise ValueError(f"NpzWriter got {self.written} of {self.count} images; no file written")
            with self._zip.open("arr_1.npy", "w") as f:
                np.lib.format.write_array(f, np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64))
            self._zip.close()
            os.replace(self._tmp, self.path)
        finally:
            self._zip.close()
            Path(self._tmp).unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        self._f.close()
        self._zip.close()
        Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self) -> NpzWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
