"""Registries of parts (by kind) and of named reference compositions.

A *part* is an ``nn.Module`` class with a ``Config`` attribute (a frozen
dataclass). Parts are registered by kind and name::
    @tk.register("quantizer", "my-vq")
    class MyVQ(torch.nn.Module):
        Config = MyVQConfig
        def __init__(self, config: MyVQConfig): ...

A *model* is a named composition: a builder function plus fixed knob values,
expanded into a [`TokenizerSpec`][tokenkit.specs.TokenizerSpec] by
[`tokenkit.spec`][tokenkit.spec].
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import pkgutil
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tokenkit.errors import RegistryError
from tokenkit.kinds import KIND_BASES
from tokenkit.sources import WeightSource

KINDS: tuple[str, ...] = tuple(KIND_BASES)
"""The part kinds tokenkit knows. Each has its own registry."""

_PARTS: dict[str, dict[str, type]] = {kind: {} for kind in KINDS}


@dataclasses.dataclass(frozen=True, eq=False)
class ModelEntry:
    """A named reference composition: ``builder(**knobs)`` returns its spec; ``weights`` says where its
    released weights are (``None``: no official weights)."""

    name: str
    builder: Callable[..., Any]
    knobs: Mapping[str, Any]
    description: str = ""
    weights: WeightSource | None = None


_MODELS: dict[str, ModelEntry] = {}

ENTRY_POINT_GROUP = "tokenkit.parts"
"""Packages can register parts on import by declaring an entry point in this group
(e.g. ``[project.entry-points."tokenkit.parts"] mypkg = "mypkg.parts"``); the
named modules are imported the first time a registry is read."""

_entry_points_loaded = False


def load_entry_points() -> None:
    """Import every module declared in the ``tokenkit.parts`` entry-point group (once)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as err:  # noqa: BLE001 - a broken plug-in must not break tokenkit
            warnings.warn(f"could not load tokenkit plug-in {ep.name!r} ({ep.value}): {err}", stacklevel=2)


_builtin_loaded = False


def load_builtin() -> None:
    """Import the built-in parts and models (once, the first time a registry is read), as the plug-ins of
    [`load_entry_points`][tokenkit.registry.load_entry_points] are: ``import tokenkit`` stays light."""
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True  # set first: a registry read while the packages import finds what is there so far
    for package in ("backbones", "encoders", "quantizers", "decoders", "generators", "losses", "discriminators",
                    "datasets", "text_encoders", "models",
                    "evaluation.inception"):  # each registers its parts / models on import
        importlib.import_module(f"tokenkit.{package}")


def import_submodules(package: str, path: Iterable[str]) -> list[str]:
    """Import every module of a family package, so that each part file registers itself on import.

    A family package (``tokenkit.quantizers``, ...) calls ``import_submodules(__name__, __path__)``
    in its ``__init__``: adding a part is one new file with a ``@register``-ed class, no other
    edit. Modules whose name starts with ``_`` are skipped.

    Returns:
        The imported module names, sorted.
    """
    names = sorted(info.name for info in pkgutil.iter_modules(list(path)) if not info.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names


def natural_key(text: str) -> list[Any]:
    """Sort key that orders ``titok-b64`` before ``titok-b128`` (natural sort)."""
    return [int(tok) if tok.isdigit() else tok for tok in re.split(r"(\d+)", text)]


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return f"Did you mean {', '.join(repr(c) for c in close)}?"
    return f"Known: {', '.join(sorted(choices, key=natural_key)) or '(none)'}."


def _check_kind(kind: str) -> None:
    if kind not in _PARTS:
        raise RegistryError(f"unknown part kind {kind!r}; kinds are {', '.join(KINDS)}")


def register(kind: str, name: str) -> Callable[[type], type]:
    """Class decorator registering a part under ``kind`` and ``name``.

    The class must derive from the base of its kind in [`tokenkit.kinds`][tokenkit.kinds]
    (``tk.Quantizer``, ``tk.Decoder``, ...; its class attributes declare the part's capabilities)
    and define ``Config``, a dataclass whose fields are the part's options; it is constructed as
    ``cls(config, **built_sub_parts)``.

    Args:
        kind: One of [`KINDS`][tokenkit.registry.KINDS].
        name: Short lowercase name, unique within the kind.

    Raises:
        RegistryError: If the kind is unknown, the name is taken, the class does not derive
            from its kind's base or has no dataclass ``Config``.

    Examples:
        >>> import dataclasses, torch, tokenkit as tk
        >>> @dataclasses.dataclass(frozen=True)
        ... class IdentityConfig:
        ...     width: int = 8
        >>> @tk.register("backbone", "doc-identity")
        ... class Identity(tk.kinds.Backbone):
        ...     Config = IdentityConfig
        ...     def __init__(self, config):
        ...         super().__init__()
        ...         self.width = config.width
        ...     def forward(self, tokens):
        ...         return tokens
        >>> "doc-identity" in tk.list_parts("backbone")
        True
        >>> tk.unregister("backbone", "doc-identity")
    """
    _check_kind(kind)
    if not isinstance(name, str) or not name:
        raise RegistryError(f"part name must be a non-empty string, got {name!r}")

    def decorator(cls: type) -> type:
        base = KIND_BASES[kind]
        if not (isinstance(cls, type) and issubclass(cls, base)):
            raise RegistryError(f"cannot register {getattr(cls, '__name__', cls)!r} as {kind} {name!r}: a {kind} "
                                f"derives from {base.__module__}.{base.__qualname__}, whose class attributes "
                                "declare what the part can do")
        config_cls = getattr(cls, "Config", None)
        if config_cls is None or not dataclasses.is_dataclass(config_cls):
            raise RegistryError(
                f"cannot register {cls.__name__} as {kind} {name!r}: it needs a "
                "`Config` class attribute that is a dataclass"
            )
        if name in _PARTS[kind]:
            raise RegistryError(
                f"{kind} {name!r} is already registered (by {_PARTS[kind][name].__qualname__}); "
                "choose another name or unregister the old part first"
            )
        _PARTS[kind][name] = cls
        cls.part_kind = kind
        cls.part_name = name
        return cls

    return decorator


def unregister(kind: str, name: str) -> None:
    """Remove a registered part (mainly for tests and notebooks).

    Examples:
        >>> import dataclasses, tokenkit as tk
        >>> Config = dataclasses.make_dataclass("Config", [("width", int, 8)], frozen=True)
        >>> _ = tk.register("backbone", "doc-temporary")(type("Temporary", (tk.Backbone,), {"Config": Config}))
        >>> tk.unregister("backbone", "doc-temporary")
        >>> "doc-temporary" in tk.list_parts("backbone")
        False
    """
    _check_kind(kind)
    load_builtin()
    if name not in _PARTS[kind]:
        raise RegistryError(f"no {kind} named {name!r}. {_suggest(name, list(_PARTS[kind]))}")
    del _PARTS[kind][name]


def get_part(kind: str, name: str) -> type:
    """Return the class registered as ``kind``/``name``.

    Raises:
        RegistryError: With the closest registered names when unknown.
    """
    _check_kind(kind)
    load_builtin()
    load_entry_points()
    try:
        return _PARTS[kind][name]
    except KeyError:
        raise RegistryError(f"no {kind} named {name!r}. {_suggest(name, list(_PARTS[kind]))}") from None


def registered_classes(name: str) -> list[type]:
    """The classes registered as ``name`` in any kind (``vqgan`` is an encoder, a quantizer and a
    decoder); empty when none is. Reads the registry as it is: it loads nothing, as it also runs
    while the part packages import (``tk.Part`` loads the built-in parts first, see ``tokenkit``)."""
    return [parts[name] for parts in _PARTS.values() if name in parts]


def list_parts(kind: str, pattern: str = "*") -> list[str]:
    """Names of registered parts of ``kind`` matching a glob ``pattern``, naturally sorted.

    Examples:
        >>> import tokenkit as tk
        >>> tk.list_parts("decoder", "v*")
        ['vit1d', 'vqgan']
    """
    _check_kind(kind)
    load_builtin()
    load_entry_points()
    names = [n for n in _PARTS[kind] if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=natural_key)


def register_model(
    name: str, builder: Callable[..., Any], description: str = "", *, weights: WeightSource | None = None,
    **knobs: Any
) -> ModelEntry:
    """Register a named composition: ``builder(**knobs)`` must return a spec.

    Args:
        name: The model's name.
        builder: Returns the spec from the knobs.
        description: One line for listings.
        weights: Where its released weights are published (a
            [`WeightSource`][tokenkit.sources.WeightSource]): ``tk.build(name, pretrained=True)`` loads them.
        **knobs: The model's knob values.

    Raises:
        RegistryError: If the name is already taken, or ``weights`` is not a ``WeightSource``.

    Examples:
        >>> import tokenkit as tk
        >>> from tokenkit.models.titok import titok
        >>> _ = tk.register_model("my-titok-16", titok, "tiny TiTok with 16 tokens", image_size=32, patch_size=8,
        ...                       num_tokens=16, encoder_size="tiny", decoder_size="tiny")
        >>> tk.build("my-titok-16").num_tokens
        16
        >>> tk.unregister_model("my-titok-16")
        >>> "my-titok-16" in tk.list_models()
        False
    """
    if name in _MODELS:
        raise RegistryError(f"model {name!r} is already registered")
    if weights is not None and not isinstance(weights, WeightSource):
        raise RegistryError(f"weights of model {name!r} must be a tk.WeightSource, got {type(weights).__name__}")
    entry = ModelEntry(name=name, builder=builder, knobs=dict(knobs), description=description, weights=weights)
    _MODELS[name] = entry
    return entry


def unregister_model(name: str) -> None:
    """Remove a registered model (mainly for tests and notebooks); see
    [`register_model`][tokenkit.registry.register_model] for an example.

    Examples:
        >>> import tokenkit as tk
        >>> tk.unregister_model("no-such-model")
        Traceback (most recent call last):
        ...
        tokenkit.errors.RegistryError: no model named 'no-such-model'. ...
    """
    load_builtin()
    if name not in _MODELS:
        raise RegistryError(f"no model named {name!r}. {_suggest(name, list(_MODELS))}")
    del _MODELS[name]


def get_model(name: str) -> ModelEntry:
    """Return the [`ModelEntry`][tokenkit.registry.ModelEntry] registered as ``name``."""
    load_builtin()
    load_entry_points()
    try:
        return _MODELS[name]
    except KeyError:
        raise RegistryError(f"no model named {name!r}. {_suggest(name, list(_MODELS))}") from None


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Names of registered reference compositions matching ``pattern``, naturally sorted; with
    ``pretrained=True`` only those with released weights (a
    [`WeightSource`][tokenkit.sources.WeightSource]: ``tk.build(name, pretrained=True)`` loads them).

    Examples:
        >>> import tokenkit as tk
        >>> tk.list_models("titok-s*")
        ['titok-s128', 'titok-sl256-vq8k']
        >>> tk.list_models("*titok-s*", pretrained=True)
        ['maskgit-titok-s128', 'tatitok-sl128-vae', 'titok-s128', 'titok-sl256-vq8k']
        >>> "titok-tiny" in tk.list_models(pretrained=True)
        False
    """
    load_builtin()
    load_entry_points()
    names = [n for n, entry in _MODELS.items()
             if fnmatch.fnmatchcase(n, pattern) and (not pretrained or entry.weights is not None)]
    return sorted(names, key=natural_key)


def part_modules(kind: str) -> list[str]:
    """The modules defining the registered parts of ``kind`` (ordered by part name, without repeats)."""
    _check_kind(kind)
    load_builtin()
    load_entry_points()
    return list(dict.fromkeys(_PARTS[kind][name].__module__ for name in sorted(_PARTS[kind], key=natural_key)))


def parts_table(kinds: Iterable[str] = KINDS) -> str:
    """A Markdown table of the registered parts (kind, name, class, first line of its docstring), with
    mkdocstrings cross-references: the docs' parts table is generated from the registry with it.

    Examples:
        >>> print(parts_table(["decoder"]).splitlines()[2])
        | `decoder` | `vit1d` | [`ViT1DDecoder`][tokenkit.decoders.vit1d.ViT1DDecoder] | ...
    """
    rows = ["| kind | name | class | what it is |", "| --- | --- | --- | --- |"]
    for kind in kinds:
        _check_kind(kind)
        load_builtin()
        load_entry_points()
        for name in sorted(_PARTS[kind], key=natural_key):
            cls = _PARTS[kind][name]
            summary = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split()).replace("|", "\\|")
            rows.append(f"| `{kind}` | `{name}` | [`{cls.__name__}`][{cls.__module__}.{cls.__qualname__}] | "
                        f"{summary} |")
    return "\n".join(rows)
