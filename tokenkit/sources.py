"""Where released weights are published: [`WeightSource`][tokenkit.sources.WeightSource], data that a named
model records (``tk.register_model(..., weights=...)``) and that ``tk.build(name, pretrained=True)`` resolves
(``tokenkit.weights.hub``). It imports nothing but the errors, so the registry and the weights package can
both use it."""

from __future__ import annotations

import dataclasses
import re

from tokenkit.errors import ConfigError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
HUB_URL = "https://huggingface.co"
"""The Hugging Face Hub, for the download addresses of ``WeightSource.url``."""


@dataclasses.dataclass(frozen=True)
class WeightSource:
    """Where the released weights of a named model are published: a file of a Hugging Face Hub repo (and
    the repo's ``config.json`` when it has one), recorded with ``tk.register_model(..., weights=...)`` and
    loaded by ``tk.build(name, pretrained=True)``.

    Attributes:
        repo_id: The Hub repo, ``owner/name``.
        filename: The weight file in the repo (``model.safetensors``, ``rar_b.bin``, ...).
        sha256: The file's SHA-256 (64 hex digits); when set, a downloaded file that does not match is refused.
            ``None``: not recorded, the file is not checked.
        revision: Branch, tag or commit to download from (default: ``main``).
        config: The repo's config file, fetched with the weights (``"config.json"`` for the repos of
            ``PyTorchModelHubMixin`` models); ``None`` for a repo of bare weight files.

    Raises:
        ConfigError: A repo id that is not ``owner/name``, an empty file name or a malformed ``sha256``.

    Examples:
        >>> import tokenkit as tk
        >>> source = tk.WeightSource("yucornetto/RAR", "rar_b.bin")
        >>> str(source), source.files
        ('yucornetto/RAR/rar_b.bin', ('rar_b.bin',))
        >>> source.url()
        'https://huggingface.co/yucornetto/RAR/resolve/main/rar_b.bin'
        >>> tk.registry.get_model("titok-l32").weights.files
        ('config.json', 'model.safetensors')
        >>> tk.WeightSource("RAR", "rar_b.bin")
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: WeightSource repo_id must be a Hub repo 'owner/name', got 'RAR'
    """

    repo_id: str
    filename: str
    sha256: str | None = None
    revision: str | None = None
    config: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.repo_id, str) or not _REPO_ID.match(self.repo_id):
            raise ConfigError(f"WeightSource repo_id must be a Hub repo 'owner/name', got {self.repo_id!r}")
        for field in ("filename", "config", "revision"):
            value = getattr(self, field)
            if (value is not None or field == "filename") and not (isinstance(value, str) and value):
                raise ConfigError(f"WeightSource {field} must be a non-empty string, got {value!r}")
        if self.sha256 is not None:
            digest = self.sha256.lower() if isinstance(self.sha256, str) else self.sha256
            if not (isinstance(digest, str) and _SHA256.match(digest)):
                raise ConfigError(f"WeightSource sha256 must be 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", digest)

    @property
    def files(self) -> tuple[str, ...]:
        """Every file fetched from the repo: the config (if any), then the weights."""
        return (self.config, self.filename) if self.config else (self.filename,)

    def url(self, filename: str | None = None) -> str:
        """The download address of ``filename`` (default: the weights) on the Hub."""
        return f"{HUB_URL}/{self.repo_id}/resolve/{self.revision or 'main'}/{filename or self.filename}"

    def __str__(self) -> str:
        """``owner/name/file``: also a valid ``pretrained=`` source (without the sha256 check)."""
        return f"{self.repo_id}/{self.filename}"
