"""Where weights come from: a local file, a local folder, or the Hugging Face Hub.

A *source* is one of

* a local weight file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``, ``.ckpt``);
* a local folder in the Hub layout: ``config.json`` (tokenkit's spec or the
  official TiTok config) and ``model.safetensors`` or ``pytorch_model.bin``;
* a Hub repo id ``owner/name`` (downloaded like a folder), or a file in a
  repo, ``owner/name/file.bin`` (e.g. ``fun-research/TiTok/tokenizer_titok_l32.bin``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

from tokenkit.errors import WeightsError
from tokenkit.weights.io import WEIGHT_SUFFIXES

CONFIG_NAME = "config.json"
WEIGHT_NAMES = ("model.safetensors", "pytorch_model.bin")
"""Weight file names looked for in a folder or repo, in order of preference."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclasses.dataclass(frozen=True)
class ResolvedSource:
    """A source made local: the weight file and, if there is one, the parsed ``config.json``.

    Attributes:
        weights: The local weight file.
        config: The parsed ``config.json``, or ``None`` when the source has none.
        description: The source as given (``hf://owner/name`` for the Hub), for messages.

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> from tokenkit.weights.hub import resolve_source
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     source = resolve_source(tk.save_pretrained(tk.build("titok-tiny"), tmp))
        ...     source.weights.name, source.config["format"], source.description == tmp
        ('model.safetensors', 'tokenkit.TokenizerSpec', True)
    """

    weights: Path
    config: dict | None
    description: str


def _read_config(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise WeightsError(f"cannot read {path}: {err}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path} must hold a JSON object")
    return data


def _from_folder(folder: Path) -> ResolvedSource:
    weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    if weights is None:
        found = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in WEIGHT_SUFFIXES and p.is_file())
        if len(found) != 1:
            raise WeightsError(f"{folder} holds {'no' if not found else 'several'} weight files {found or ''}; "
                               f"expected {' or '.join(WEIGHT_NAMES)}")
        weights = folder / found[0]
    config_path = folder / CONFIG_NAME
    config = _read_config(config_path) if config_path.is_file() else None
    return ResolvedSource(weights, config, str(folder))


def _offline_help(repo_id: str, filename: str) -> str:
    return (f"could not download {filename!r} from the Hugging Face Hub repo {repo_id!r}. If this machine is "
            f"offline, fetch https://huggingface.co/{repo_id}/resolve/main/{filename} (and {CONFIG_NAME} when it "
            "exists) on a connected machine, put the files in one folder and pass that folder (or the file) instead")


@dataclasses.dataclass(frozen=True)
class HubOptions:
    """How files are fetched from the Hub (``huggingface_hub.hf_hub_download``'s options).

    Examples:
        Only the cache, never the network (here an empty cache, so the file is not found):

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as cache:
        ...     options = HubOptions(cache_dir=cache, local_files_only=True)
        ...     resolve_source("fun-research/TiTok", hub=options)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: no local file or folder 'fun-research/TiTok'; as a Hub id: could not download ...
        >>> HubOptions(revision="main", token=False).revision
        'main'
    """

    revision: str | None = None
    """Branch, tag or commit."""
    cache_dir: str | os.PathLike | None = None
    """Where downloads are cached (default: huggingface_hub's cache, ``HF_HOME``)."""
    token: str | bool | None = None
    """Hub token for private repos (default: the logged-in user's)."""
    local_files_only: bool = False
    """Use only files already in the cache; never touch the network."""


def hub_download(repo_id: str, filename: str, options: HubOptions = HubOptions()) -> Path | None:
    """Download one file from the Hub (cached by huggingface_hub); ``None`` if the repo has no such file.

    Raises:
        WeightsError: No network / offline mode, unknown repo, or ``huggingface_hub`` missing.

    Examples:
        >>> path = hub_download("fun-research/TiTok", "tokenizer_titok_l32.bin")  # doctest: +SKIP
        >>> path.name  # doctest: +SKIP
        'tokenizer_titok_l32.bin'

        Offline, with an empty cache, the error says how to fetch the file by hand:

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as cache:
        ...     hub_download("fun-research/TiTok", "config.json",
        ...                  HubOptions(cache_dir=cache, local_files_only=True))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: could not download 'config.json' from the Hugging Face Hub repo ...
    """
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:  # pragma: no cover - a declared dependency
        raise WeightsError("loading from the Hub needs the huggingface_hub package") from None
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=options.revision,
                                                    cache_dir=options.cache_dir, token=options.token,
                                                    local_files_only=options.local_files_only))
    except errors.LocalEntryNotFoundError:
        raise WeightsError(_offline_help(repo_id, filename)) from None
    except errors.RemoteEntryNotFoundError:
        return None
    except errors.RepositoryNotFoundError:
        raise WeightsError(f"Hub repo {repo_id!r} does not exist (or is private: log in with `hf auth login`)") from None
    except (errors.HfHubHTTPError, OSError, ValueError) as err:
        raise WeightsError(f"{_offline_help(repo_id, filename)} ({type(err).__name__}: {err})") from None


def _from_hub(source: str, options: HubOptions) -> ResolvedSource:
    parts = source.split("/")
    if len(parts) > 2:  # owner/name/path/to/file
        repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
        path = hub_download(repo_id, filename, options)
        if path is None:
            raise WeightsError(f"Hub repo {repo_id!r} has no file {filename!r}")
        return ResolvedSource(path, None, f"hf://{source}")
    config_path = hub_download(source, CONFIG_NAME, options)
    for name in WEIGHT_NAMES:
        weights = hub_download(source, name, options)
        if weights is not None:
            config = _read_config(config_path) if config_path is not None else None
            return ResolvedSource(weights, config, f"hf://{source}")
    raise WeightsError(f"Hub repo {source!r} has none of {', '.join(WEIGHT_NAMES)}")


def resolve_source(source: str | os.PathLike, revision: str | None = None, *,
                   hub: HubOptions | None = None) -> ResolvedSource:
    """Make ``source`` local (see the module docs for the accepted forms).

    Args:
        source: A file, a folder or a Hub id.
        revision: Hub revision (shorthand for ``hub.revision``).
        hub: Hub download options (cache folder, token, cache only).

    Raises:
        WeightsError: The path does not exist and is not a Hub id, or the download fails.

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = tk.save_pretrained(tk.build("titok-tiny"), tmp)
        ...     from_folder = resolve_source(folder)
        ...     from_file = resolve_source(folder / "model.safetensors")
        >>> from_folder.weights.name, from_folder.config["format"]
        ('model.safetensors', 'tokenkit.TokenizerSpec')
        >>> from_file.config is None  # a bare file has no config.json
        True
        >>> resolve_source("fun-research/TiTok/tokenizer_titok_l32.bin")  # doctest: +SKIP
        ResolvedSource(weights=PosixPath('.../tokenizer_titok_l32.bin'), config=None, ...)
        >>> resolve_source("no/such/file.txt")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: weights source 'no/such/file.txt' is neither an existing file or folder nor ...
    """
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise WeightsError(f"cannot read {path}: expected one of {', '.join(WEIGHT_SUFFIXES)} or a folder")
        return ResolvedSource(path, None, str(path))
    text = str(source)
    hub_like = _REPO_ID.match(text) or (text.count("/") >= 2 and not text.startswith(("/", ".", "~"))
                                        and Path(text).suffix.lower() in WEIGHT_SUFFIXES)
    if not hub_like:
        raise WeightsError(f"weights source {text!r} is neither an existing file or folder nor a Hub repo id "
                           "('owner/name' or 'owner/name/file.bin')")
    try:
        options = hub or HubOptions()
        return _from_hub(text, dataclasses.replace(options, revision=revision or options.revision))
    except WeightsError as err:
        raise WeightsError(f"no local file or folder {text!r}; as a Hub id: {err}") from None
