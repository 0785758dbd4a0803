"""Compositions as data: [`Part`][tokenkit.specs.Part] and
[`TokenizerSpec`][tokenkit.specs.TokenizerSpec].

A spec names its parts and their options; it holds no tensors. Cross-part
dimensions (the encoder's output width, the decoder's input width) are left
unset in reference specs and *resolved* from the bottleneck, so swapping the
quantizer is one ``replace`` call::

    spec = tk.spec("titok-bl64-vq8k").replace(quantizer=tk.Part("gaussian", channels=16))

Every spec is validated when it is created: unknown parts, unknown options and
incompatible dimensions raise [`ConfigError`][tokenkit.errors.ConfigError]
before any module is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
from collections.abc import Mapping
from typing import Any, ClassVar

from tokenkit.errors import ConfigError, RegistryError
from tokenkit.registry import KINDS, get_part, registered_classes

SPEC_VERSION = 1


def _freeze(value: Any) -> Any:
    """Lists become tuples and JSON-encoded parts become [`Part`][tokenkit.specs.Part]s."""
    if isinstance(value, Mapping) and set(value) == {"part", "config"}:
        return Part(value["part"], **value["config"])
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    return value


def _to_json(value: Any) -> Any:
    if isinstance(value, Part):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"option value {value!r} of type {type(value).__name__} is not JSON-serialisable")


class Part:
    """A registered part named by ``name`` with its options.

    Args:
        name: Registered part name (the kind comes from where the part is used).
        **config: Options of the part's ``Config``; a value may itself be a
            ``Part`` (a sub-part such as an encoder's backbone).

    Examples:
        >>> import tokenkit as tk
        >>> p = tk.Part("vq", codebook_size=1024, dim=16)
        >>> p.config["codebook_size"]
        1024
        >>> p.with_options(dim=32)
        Part('vq', codebook_size=1024, dim=32)
    """

    __slots__ = ("_name", "_config")

    def __init__(self, name: str, **config: Any) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"Part name must be a non-empty string, got {name!r}")
        _check_option_names(name, config)
        self._name = name
        self._config = types.MappingProxyType({k: _freeze(v) for k, v in config.items()})

    @property
    def name(self) -> str:
        """Registered name of the part."""
        return self._name

    @property
    def config(self) -> Mapping[str, Any]:
        """Read-only mapping of the options given (defaults not included)."""
        return self._config

    def with_options(self, **changes: Any) -> Part:
        """A copy with some options changed (``None`` removes an option)."""
        merged = {**self._config, **changes}
        return Part(self._name, **{k: v for k, v in merged.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"part": name, "config": {...}}``."""
        return {"part": self._name, "config": {k: _to_json(v) for k, v in self._config.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Part:
        """Inverse of [`to_dict`][tokenkit.specs.Part.to_dict]."""
        if not isinstance(data, Mapping) or set(data) != {"part", "config"}:
            raise ConfigError(f"a part must be a mapping with keys 'part' and 'config', got {data!r}")
        return cls(data["part"], **data["config"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Part) and self.to_dict() == other.to_dict()

    def __reduce__(self) -> tuple:  # picklable (and deep-copyable) although immutable
        return (_rebuild_part, (self._name, dict(self._config)))

    def __copy__(self) -> Part:
        return self

    def __deepcopy__(self, memo: dict) -> Part:
        return self

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self._config.items())
        return f"Part({self._name!r}{opts})"


def _check_option_names(name: str, config: Mapping[str, Any]) -> None:
    """Refuse options that no registered part called ``name`` has (any kind; the kind is not known
    until the part is used). A name registered nowhere (yet) passes: it is checked when built."""
    configs = [cls.Config for cls in registered_classes(name)]
    if not configs or not config:
        return
    fields = sorted({f.name for c in configs for f in dataclasses.fields(c)})
    unknown = sorted(set(config) - set(fields))
    if unknown:
        hints = [f"{u!r} -> {', '.join(repr(c) for c in close)}" for u in unknown
                 if (close := difflib.get_close_matches(u, fields, n=2, cutoff=0.6))]
        raise ConfigError(f"part {name!r} has no option(s) {', '.join(unknown)}"
                          + (f" (did you mean {'; '.join(hints)}?)" if hints else "")
                          + f"; its options are {', '.join(fields)}")


def _rebuild_part(name: str, config: dict[str, Any]) -> Part:
    return Part(name, **config)


def sub_part_kind(field: dataclasses.Field) -> str | None:
    """Kind of a config field holding a sub-part: ``metadata["kind"]`` or a field named after a kind.

    Examples:
        >>> import dataclasses
        >>> from tokenkit.registry import get_part
        >>> fields = dataclasses.fields(get_part("encoder", "vit1d").Config)
        >>> {f.name: sub_part_kind(f) for f in fields if sub_part_kind(f)}  # named after the kind
        {'backbone': 'backbone'}
        >>> @dataclasses.dataclass
        ... class MyConfig:
        ...     inner: object = dataclasses.field(default=None, metadata={"kind": "quantizer"})
        ...     width: int = 64
        >>> [sub_part_kind(f) for f in dataclasses.fields(MyConfig)]
        ['quantizer', None]
    """
    kind = field.metadata.get("kind")
    if kind is None and field.name in KINDS:
        kind = field.name
    return kind


def resolve_part(kind: str, part: Part, **derived: Any) -> Any:
    """Return the typed ``Config`` of ``part`` as a part of ``kind``.

    Args:
        kind: Part kind to look the name up in.
        part: The part.
        **derived: Options filled in by the composition; they only apply
            where the part left the option unset (``None``).

    Raises:
        ConfigError: Unknown part, unknown option or a value the config rejects.

    Examples:
        >>> import tokenkit as tk
        >>> config = resolve_part("quantizer", tk.Part("vq", codebook_size=1024))
        >>> type(config).__name__, config.codebook_size, config.dim  # defaults filled in
        ('VQConfig', 1024, 12)
        >>> encoder = tk.spec("titok-tiny").encoder
        >>> resolve_part("encoder", encoder, out_dim=16).out_dim  # derived: only where the part left it unset
        16
        >>> resolve_part("quantizer", tk.Part("vq", codebook_size=0))
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: invalid options for quantizer 'vq': codebook_size must be a positive int, got 0
    """
    if not isinstance(part, Part):
        raise ConfigError(f"{kind} must be a tokenkit.Part, got {type(part).__name__}: {part!r}")
    try:
        cls = get_part(kind, part.name)
    except RegistryError as err:
        raise ConfigError(str(err)) from None
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    unknown = sorted(set(part.config) - set(fields))
    if unknown:
        raise ConfigError(
            f"{kind} {part.name!r} has no option(s) {', '.join(unknown)}; "
            f"its options are {', '.join(fields)}"
        )
    options = dict(part.config)
    for key, value in derived.items():
        if key in fields and options.get(key) is None:
            options[key] = value
    for name, field in fields.items():
        sub_kind = sub_part_kind(field)
        if sub_kind is not None and isinstance(options.get(name), Part):
            resolve_part(sub_kind, options[name])  # validate the sub-part early
    try:
        return cls.Config(**options)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"invalid options for {kind} {part.name!r}: {err}") from None


def _check_equal(what: str, a_name: str, a: Any, b_name: str, b: Any) -> None:
    if a is not None and b is not None and a != b:
        raise ConfigError(f"{what} mismatch: {a_name} has {a}, {b_name} has {b}")


class _SpecIO:
    """JSON round trip and ``replace`` shared by the spec types (``FORMAT`` names the type)."""

    FORMAT: ClassVar[str]

    def replace(self, **changes: Any) -> Any:
        """A copy with some parts replaced (validated like a new spec).

        Examples:
            >>> import tokenkit as tk
            >>> spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("gaussian", channels=4))
            >>> spec.quantizer.name
            'gaussian'
        """
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no field(s) {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (what ``config.json`` of a saved model holds)."""
        out: dict[str, Any] = {"format": self.FORMAT, "version": SPEC_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = None if value is None else value.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        """Inverse of ``to_dict``."""
        if not isinstance(data, Mapping) or data.get("format") != cls.FORMAT:
            raise ConfigError(f"not a tokenkit {cls.__name__} (expected \"format\": {cls.FORMAT!r})")
        if data.get("version") != SPEC_VERSION:
            raise ConfigError(f"unsupported spec version {data.get('version')!r}; this tokenkit reads {SPEC_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - names - {"format", "version"}
        if extra:
            raise ConfigError(f"unknown spec field(s): {', '.join(sorted(extra))}")
        parts = {k: (None if data.get(k) is None else Part.from_dict(data[k])) for k in names}
        return cls(**parts)

    def to_json(self, indent: int | None = 2) -> str:
        """Serialise to a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Any:
        """Parse a JSON string written by ``to_json``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"spec is not valid JSON: {err}") from None
        return cls.from_dict(data)


@dataclasses.dataclass(frozen=True)
class TokenizerSpec(_SpecIO):
    """A tokenizer composition: ``encoder -> quantizer -> decoder [-> pixel_decoder]``.

    Attributes:
        encoder: Part of kind ``encoder`` (images -> latents ``(B, N, D)``).
        quantizer: Part of kind ``quantizer`` (latents -> codes ``(B, N, D')``).
        decoder: Part of kind ``decoder`` (codes -> images, or proxy-code logits).
        pixel_decoder: Optional second decoder fed with the first decoder's
            output (TiTok's two-stage models: proxy-code logits -> pixels).
        text_encoder: Optional part of kind ``text_encoder`` that embeds prompts for a text-aware
            decoder (TA-TiTok: ``Part("openclip", ...)``); its width and length must match the
            decoder's ``text_dim`` / ``text_length``. A text-aware decoder without one takes embeddings only.

    Cross-part dimensions are resolved by [`resolve`][tokenkit.specs.TokenizerSpec.resolve]:
    an encoder ``out_dim`` left unset takes the quantizer's ``in_dim``, a
    decoder ``in_dim`` left unset takes the quantizer's ``out_dim``, and a
    pixel decoder ``in_dim`` takes the decoder's ``out_dim``. Values that are
    set must agree, as must ``num_tokens`` and ``image_size`` of encoder and
    decoder.

    Examples:
        >>> import tokenkit as tk
        >>> spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("fsq", levels=(8, 5, 5, 5)))
        >>> spec.quantizer
        Part('fsq', levels=(8, 5, 5, 5))
        >>> spec.resolve()["encoder"].out_dim  # sized from the quantizer
        4
        >>> tk.TokenizerSpec.from_json(spec.to_json()) == spec
        True
    """

    encoder: Part
    quantizer: Part
    decoder: Part
    pixel_decoder: Part | None = None
    text_encoder: Part | None = None

    FORMAT: ClassVar[str] = "tokenkit.TokenizerSpec"

    def __post_init__(self) -> None:
        self.resolve()

    def resolve(self) -> dict[str, Any]:
        """Typed configs of every part, with cross-part dimensions filled in.

        Returns:
            ``{"encoder": EncoderConfig, "quantizer": ..., "decoder": ..., "pixel_decoder": ... | None,
            "text_encoder": ... | None}``

        Raises:
            ConfigError: If a part or option is unknown or dimensions disagree.
        """
        q = resolve_part("quantizer", self.quantizer)
        q_in, q_out = getattr(q, "in_dim", None), getattr(q, "out_dim", None)
        enc = resolve_part("encoder", self.encoder, out_dim=q_in)
        _check_equal("latent width", f"encoder {self.encoder.name!r} (out_dim)", getattr(enc, "out_dim", None),
                     f"quantizer {self.quantizer.name!r} (in_dim)", q_in)
        dec = resolve_part("decoder", self.decoder, in_dim=q_out)
        _check_equal("code width", f"quantizer {self.quantizer.name!r} (out_dim)", q_out,
                     f"decoder {self.decoder.name!r} (in_dim)", getattr(dec, "in_dim", None))
        for attr in ("num_tokens", "image_size"):
            _check_equal(attr, f"encoder {self.encoder.name!r}", getattr(enc, attr, None),
                         f"decoder {self.decoder.name!r}", getattr(dec, attr, None))
        _check_equal("image channels", "encoder (in_channels)", getattr(enc, "in_channels", None),
                     "decoder (out_channels)", getattr(dec, "out_channels", None))
        pix = None
        if self.pixel_decoder is not None:
            d_out = getattr(dec, "out_dim", None)
            pix = resolve_part("decoder", self.pixel_decoder, in_dim=d_out)
            _check_equal("pixel-decoder input width", f"decoder {self.decoder.name!r} (out_dim)", d_out,
                         f"pixel decoder {self.pixel_decoder.name!r} (in_dim)", getattr(pix, "in_dim", None))
            _check_equal("upsampling factor", f"decoder {self.decoder.name!r} (patch_size)",
                         getattr(dec, "patch_size", None),
                         f"pixel decoder {self.pixel_decoder.name!r} (upsample_factor)",
                         getattr(pix, "upsample_factor", None))
        text = None
        if self.text_encoder is not None:
            text = resolve_part("text_encoder", self.text_encoder)
            if getattr(dec, "text_dim", None) is None:
                raise ConfigError(f"text_encoder {self.text_encoder.name!r} is set but decoder {self.decoder.name!r} "
                                  "takes no text (give the decoder text_dim, e.g. TA-TiTok's vit1d decoder)")
            for what, ours, theirs in (("text width", "text_width", "text_dim"),
                                       ("text length", "text_length", "text_length")):
                _check_equal(what, f"text encoder {self.text_encoder.name!r}", getattr(text, ours, None),
                             f"decoder {self.decoder.name!r} ({theirs})", getattr(dec, theirs, None))
        return {"encoder": enc, "quantizer": q, "decoder": dec, "pixel_decoder": pix, "text_encoder": text}



@dataclasses.dataclass(frozen=True)
class GeneratorSpec(_SpecIO):
    """A generator composition: one part of kind ``generator`` (with its sub-parts).

    Attributes:
        generator: Part of kind ``generator`` (e.g. ``Part("maskgit", ...)``).

    Examples:
        >>> import tokenkit as tk
        >>> spec = tk.spec("maskgit-tiny")
        >>> spec.generator.name, type(tk.build(spec)).__name__
        ('maskgit', 'MaskGIT')
    """

    generator: Part

    FORMAT: ClassVar[str] = "tokenkit.GeneratorSpec"

    def __post_init__(self) -> None:
        self.resolve()

    def resolve(self) -> dict[str, Any]:
        """``{"generator": GeneratorConfig}``; raises ConfigError on unknown parts or options."""
        return {"generator": resolve_part("generator", self.generator)}


Spec = TokenizerSpec | GeneratorSpec
"""Any composition."""


def spec_from_dict(data: Mapping[str, Any]) -> Spec:
    """A [`TokenizerSpec`][tokenkit.specs.TokenizerSpec] or [`GeneratorSpec`][tokenkit.specs.GeneratorSpec]
    from its ``to_dict`` form (dispatching on ``"format"``).

    Raises:
        ConfigError: ``data`` is not the dict form of a spec (or names unknown parts or options).

    Examples:
        >>> import tokenkit as tk
        >>> data = tk.spec("maskgit-tiny").to_dict()
        >>> data["format"]
        'tokenkit.GeneratorSpec'
        >>> spec = spec_from_dict(data)
        >>> type(spec).__name__, spec == tk.spec("maskgit-tiny")
        ('GeneratorSpec', True)
        >>> type(spec_from_dict(tk.spec("titok-tiny").to_dict())).__name__
        'TokenizerSpec'
    """
    for cls in (TokenizerSpec, GeneratorSpec):
        if isinstance(data, Mapping) and data.get("format") == cls.FORMAT:
            return cls.from_dict(data)
    raise ConfigError(f"not a tokenkit spec (expected \"format\" {TokenizerSpec.FORMAT!r} or {GeneratorSpec.FORMAT!r})")
