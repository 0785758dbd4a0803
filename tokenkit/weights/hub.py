"""Where weights come from: a local file, a local folder, or the Hugging Face Hub.

A *source* is one of

* a local weight file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``, ``.ckpt``);
* a local folder in the Hub layout: ``config.json`` (tokenkit's spec or the
  official TiTok config) and ``model.safetensors`` or ``pytorch_model.bin``;
* a Hub repo id ``owner/name`` (downloaded like a folder), or a file in a
  repo, ``owner/name/file.bin`` (e.g. ``fun-research/TiTok/tokenizer_titok_l32.bin``);
* a [`WeightSource`][tokenkit.sources.WeightSource]: the recorded release of a named model (its
  repo, files and sha256), what ``tk.build(name, pretrained=True)`` resolves.

Hub downloads fail fast when they cannot succeed: with ``local_files_only``, ``HF_HUB_OFFLINE=1``, or
when the Hub does not answer one quick request (no network), only the Hub cache is read, and a file
that is not there gives one error naming every file needed, its download address and where to put it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from tokenkit.errors import WeightsError
from tokenkit.sources import HUB_URL, WeightSource
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
        tokenkit.errors.WeightsError: no local file or folder 'fun-research/TiTok'; as a Hub id: cannot get ...
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


PROBE_TIMEOUT = 3.0
"""Seconds the Hub has to answer the one request made before a download of a file that is not cached (no
retries); ``HF_HUB_ETAG_TIMEOUT`` overrides it. Without an answer only the cache is read, so that a machine
without network fails at once instead of after huggingface_hub's retries (about 25 s per file)."""

_TRUE = {"1", "ON", "YES", "TRUE"}


def _offline_reason(options: HubOptions) -> str | None:
    """Why the network must not be used (``None``: it may): ``local_files_only`` or ``HF_HUB_OFFLINE``, read
    at each call (huggingface_hub reads it once, at import)."""
    if options.local_files_only:
        return "local_files_only=True"
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().upper() in _TRUE:
            return f"{variable}={os.environ[variable]} is set"
    from huggingface_hub import constants

    return "HF_HUB_OFFLINE is set" if getattr(constants, "HF_HUB_OFFLINE", False) else None


def _cache_folder(repo_id: str, options: HubOptions) -> Path:
    """Where huggingface_hub caches ``repo_id`` (``<cache>/models--owner--name``)."""
    from huggingface_hub import constants

    return Path(options.cache_dir or constants.HF_HUB_CACHE).expanduser() / f"models--{repo_id.replace('/', '--')}"


def _cached(repo_id: str, filename: str, options: HubOptions) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename, cache_dir=options.cache_dir, revision=options.revision)
    except (OSError, ValueError):
        return False
    return isinstance(found, str)


def _probe(repo_id: str, filename: str, options: HubOptions) -> str | None:
    """One request for the file's metadata, without retries: why the Hub cannot serve it (no network, a
    time-out, a server error), or ``None`` when it answered (an unknown repo or file is an answer too)."""
    from huggingface_hub import errors, get_hf_file_metadata, hf_hub_url

    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or PROBE_TIMEOUT)
    try:
        get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=options.revision), token=options.token,
                             timeout=timeout)
    except errors.HfHubHTTPError as err:
        status = getattr(getattr(err, "response", None), "status_code", None)
        return f"the Hub answered HTTP {status}" if status in (408, 500, 502, 503, 504) else None
    except errors.HFValidationError:
        return None  # the download reports it
    except Exception as err:  # noqa: BLE001 - any transport error (httpx, requests, OfflineModeIsEnabled, ...)
        detail = str(err).splitlines()[0] if str(err) else ""
        return f"the Hub cannot be reached ({type(err).__name__}{': ' + detail if detail else ''})"
    return None


class _Unavailable(WeightsError):
    """A Hub file that is neither in the cache nor downloadable now (offline, no network, Hub down)."""

    def __init__(self, repo_id: str, filename: str, reason: str, options: HubOptions) -> None:
        self.reason = reason
        super().__init__(_missing_message(repo_id, [filename], reason, options))


def _missing_message(repo_id: str, files: Sequence[str], reason: str, options: HubOptions, *,
                     what: str | None = None, alternatives: Sequence[str] = ()) -> str:
    """One message naming every file needed from ``repo_id``, its download address, and where to put it."""
    revision = options.revision or "main"
    cache = _cache_folder(repo_id, options)
    lines = [f"  {HUB_URL}/{repo_id}/resolve/{revision}/{name}" for name in files]
    if alternatives:
        lines[-1] += " (or " + ", ".join(f".../{name}" for name in alternatives) + ")"
    if len(files) > 1:
        local = "put them in one folder and pass that folder instead (pretrained='/path/to/folder')"
    else:
        local = f"pass that file instead (pretrained='/path/to/{Path(files[0]).name}')"
    command = f"hf download {repo_id} {' '.join(files)}" + (f" --revision {revision}" if options.revision else "")
    return (f"{what + ': ' if what else ''}cannot get {' and '.join(repr(f) for f in files)} from the Hugging Face "
            f"Hub repo {repo_id!r}: not in the Hub cache ({cache}) and not downloadable now: {reason}. If this "
            f"machine is offline, download on a connected machine:\n" + "\n".join(lines) + "\n"
            f"then either {local}, or run `{command}` there and copy the {cache.name} folder of its Hub cache "
            f"(~/.cache/huggingface/hub) to {cache.parent}")


def hub_download(repo_id: str, filename: str, options: HubOptions = HubOptions()) -> Path | None:
    """Download one file from the Hub (cached by huggingface_hub); ``None`` if the repo has no such file.

    With ``local_files_only`` or ``HF_HUB_OFFLINE=1`` only the cache is read; otherwise a file that is not
    cached is first asked for once, without retries (see [`PROBE_TIMEOUT`][tokenkit.weights.hub.PROBE_TIMEOUT]),
    and only the cache is read when the Hub does not answer.

    Raises:
        WeightsError: The file is neither cached nor downloadable (the message names its download address
            and where to put it), unknown repo, or ``huggingface_hub`` missing.

    Examples:
        >>> path = hub_download("fun-research/TiTok", "tokenizer_titok_l32.bin")  # doctest: +SKIP
        >>> path.name  # doctest: +SKIP
        'tokenizer_titok_l32.bin'

        Offline, with an empty cache, the error says how to fetch the file by hand:

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as cache:
        ...     hub_download("fun-research/TiTok", "tokenizer_titok_l32.bin",
        ...                  HubOptions(cache_dir=cache, local_files_only=True))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: cannot get 'tokenizer_titok_l32.bin' from the Hugging Face Hub repo ...
    """
    try:
        return _hub_download(repo_id, filename, options)
    except _Unavailable as err:
        raise WeightsError(str(err)) from None


def _hub_download(repo_id: str, filename: str, options: HubOptions) -> Path | None:
    """[`hub_download`][tokenkit.weights.hub.hub_download], raising ``_Unavailable`` for a file that is neither
    cached nor downloadable now, so that a caller fetching several files can name them all."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:  # pragma: no cover - a declared dependency
        raise WeightsError("loading from the Hub needs the huggingface_hub package") from None
    reason = _offline_reason(options)
    if reason is None and not _cached(repo_id, filename, options):
        reason = _probe(repo_id, filename, options)
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id, filename, revision=options.revision,
                                                    cache_dir=options.cache_dir, token=options.token,
                                                    local_files_only=options.local_files_only or reason is not None))
    except errors.LocalEntryNotFoundError:
        raise _Unavailable(repo_id, filename, reason or "the download failed", options) from None
    except errors.RemoteEntryNotFoundError:
        return None
    except errors.RepositoryNotFoundError:
        raise WeightsError(f"Hub repo {repo_id!r} does not exist (or is private: log in with `hf auth login`)") from None
    except (errors.HfHubHTTPError, OSError, ValueError) as err:
        detail = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        raise _Unavailable(repo_id, filename, f"{reason}; {detail}" if reason else detail, options) from None


def _fetch(repo_id: str, config: str | None, weight_names: Sequence[str], options: HubOptions, *,
           config_required: bool = False, what: str | None = None) -> tuple[Path | None, Path]:
    """``config`` (when given) and the first of ``weight_names`` the repo has; one error naming every file
    when some are neither cached nor downloadable. After the first such file only the cache is read."""
    unavailable = None
    config_path = None
    if config is not None:
        try:
            config_path = _hub_download(repo_id, config, options)
        except _Unavailable as err:
            unavailable, options = err.reason, dataclasses.replace(options, local_files_only=True)
        if config_path is None and config_required and unavailable is None:
            raise WeightsError(f"Hub repo {repo_id!r} has no file {config!r}")
    weights = None
    for name in weight_names:
        try:
            weights = _hub_download(repo_id, name, options)
        except _Unavailable as err:
            unavailable = unavailable or err.reason
            options = dataclasses.replace(options, local_files_only=True)
            continue
        if weights is not None:
            break
    if unavailable is not None and (weights is None or (config_required and config_path is None)):
        files = ([config] if config is not None else []) + [weight_names[0]]
        raise WeightsError(_missing_message(repo_id, files, unavailable, options, what=what,
                                            alternatives=weight_names[1:]))
    if weights is None:
        raise WeightsError(f"Hub repo {repo_id!r} has no file {weight_names[0]!r}" if len(weight_names) == 1
                           else f"Hub repo {repo_id!r} has none of {', '.join(weight_names)}")
    return config_path, weights


def _from_hub(source: str, options: HubOptions) -> ResolvedSource:
    parts = source.split("/")
    if len(parts) > 2:  # owner/name/path/to/file
        repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
        _, path = _fetch(repo_id, None, [filename], options)
        return ResolvedSource(path, None, f"hf://{source}")
    config_path, weights = _fetch(source, CONFIG_NAME, WEIGHT_NAMES, options)
    config = _read_config(config_path) if config_path is not None else None
    return ResolvedSource(weights, config, f"hf://{source}")


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, as 64 lowercase hex digits (read in 1 MiB chunks).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     (Path(tmp) / "empty.bin").write_bytes(b"")
        ...     file_sha256(Path(tmp) / "empty.bin")
        0
        'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weight_source(source: WeightSource, hub: HubOptions | None = None, *, what: str | None = None
                          ) -> ResolvedSource:
    """Make a recorded release local: its config (if any) and weight file from the Hub cache or the Hub, the
    weights checked against ``source.sha256`` when it is recorded.

    The revision is ``hub.revision``, else ``source.revision``, else ``main``. A repo of the
    ``PyTorchModelHubMixin`` layout whose weights are not ``source.filename`` (``model.safetensors``) but
    the other of ``model.safetensors`` / ``pytorch_model.bin`` is read as ``TiTok.from_pretrained`` reads it
    (only when no sha256 is recorded).

    Args:
        source: The release.
        hub: Cache folder, token, cache only, revision.
        what: The model's name, for messages.

    Raises:
        WeightsError: A file is neither cached nor downloadable (one message naming every file needed, its
            download address and where to put it), the repo lacks it, or the sha256 differs.

    Examples:
        A fake Hub cache holding a saved tiny model, read with ``local_files_only``:

        >>> import tempfile, tokenkit as tk
        >>> from pathlib import Path
        >>> cache = tempfile.TemporaryDirectory()
        >>> snapshot = Path(cache.name) / "models--me--tiny" / "snapshots" / ("0" * 40)
        >>> _ = tk.save_pretrained(tk.build("titok-tiny"), snapshot)
        >>> _ = (snapshot.parent.parent / "refs").mkdir(), (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
        >>> options = HubOptions(cache_dir=cache.name, local_files_only=True)
        >>> found = resolve_weight_source(tk.WeightSource("me/tiny", "model.safetensors", config="config.json"), options)
        >>> found.weights.name, found.config["format"], found.description
        ('model.safetensors', 'tokenkit.TokenizerSpec', 'hf://me/tiny/model.safetensors')
        >>> resolve_weight_source(tk.WeightSource("me/other", "w.bin"), options, what="other")
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: other: cannot get 'w.bin' from the Hugging Face Hub repo 'me/other': ...
        >>> cache.cleanup()
    """
    if not isinstance(source, WeightSource):
        raise WeightsError(f"expected a tk.WeightSource, got {type(source).__name__}")
    options = hub or HubOptions()
    options = dataclasses.replace(options, revision=options.revision or source.revision)
    names = [source.filename]
    if source.sha256 is None and source.filename in WEIGHT_NAMES:
        names += [name for name in WEIGHT_NAMES if name != source.filename]
    config_path, weights = _fetch(source.repo_id, source.config, names, options, config_required=True, what=what)
    if source.sha256 is not None:
        actual = file_sha256(weights)
        if actual != source.sha256:
            raise WeightsError(f"{what + ': ' if what else ''}{weights} ({source.repo_id}/{source.filename}) has "
                               f"sha256 {actual}, expected {source.sha256}: the file is corrupt or not the "
                               "recorded release. Delete it and download it again")
    config = _read_config(config_path) if config_path is not None else None
    return ResolvedSource(weights, config, f"hf://{source.repo_id}/{weights.name}")


def resolve_source(source: str | os.PathLike | WeightSource, revision: str | None = None, *,
                   hub: HubOptions | None = None) -> ResolvedSource:
    """Make ``source`` local (see the module docs for the accepted forms).

    Args:
        source: A file, a folder, a Hub id or a [`WeightSource`][tokenkit.sources.WeightSource].
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
    if isinstance(source, WeightSource):
        options = hub or HubOptions()
        return resolve_weight_source(source, dataclasses.replace(options, revision=revision or options.revision))
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
