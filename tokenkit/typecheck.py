"""Typed options: values checked against the type hints of a dataclass (or a function), with ranges.

Configs read from files and command lines (a recipe's sections, ``TrainConfig``) hold JSON values.
[`check_fields`][tokenkit.typecheck.check_fields] checks such values against the fields' type
hints and refuses unknown keys; [`check_dataclass`][tokenkit.typecheck.check_dataclass] checks an
instance in place. Every error is an [`OptionError`][tokenkit.typecheck.OptionError] (a
``ConfigError``) whose message names the option by its dotted name (``prefix.field``).

The hints understood:

| hint | accepts |
| --- | --- |
| ``int`` | an int, not a bool |
| ``float`` | a finite int or float, not a bool |
| ``str``, ``bool``, ``None`` | that type only (``1`` is not ``True``) |
| ``X | None``, ``X | Y`` | any of them |
| ``Literal[a, b]`` | one of the values |
| ``tuple[X, ...]``, ``tuple[X, Y]`` | a list or tuple of such items (stored as a tuple; for ``tuple[str, ...]`` a single string is a one-item tuple) |
| ``Mapping[str, X]`` | a mapping with string keys |
| ``Any``, other typing forms | anything |
| a class | an instance of it |

A [`Range`][tokenkit.typecheck.Range] per option bounds the numbers (of a tuple: each item).

Examples:
    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Options:
    ...     steps: int = 10
    ...     names: tuple[str, ...] = ()
    >>> check_fields(Options, {"steps": 3, "names": ["a", "b"]}, prefix="train")
    {'steps': 3, 'names': ('a', 'b')}
    >>> check_fields(Options, {"steps": "ten"}, prefix="train")
    Traceback (most recent call last):
    ...
    tokenkit.typecheck.OptionError: train.steps must be an int, got 'ten' (str)
    >>> check_fields(Options, {"steps": -3}, prefix="train", ranges={"steps": POSITIVE})
    Traceback (most recent call last):
    ...
    tokenkit.typecheck.OptionError: train.steps must be a positive int, got -3
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from tokenkit.errors import ConfigError

__all__ = [
    "NON_NEGATIVE",
    "POSITIVE",
    "InRange",
    "OptionError",
    "Range",
    "check_dataclass",
    "check_fields",
    "check_value",
    "construct",
    "type_hints",
]


class OptionError(ConfigError):
    """A ``ConfigError`` about one option.

    Args:
        message: The error, naming the option.
        option: The option's dotted name (``"train.steps"``).
    """

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.option))

    def within(self, section: str) -> OptionError:
        """The same error with the option inside ``section``: ``steps ...`` becomes ``train.steps ...``."""
        message = str(self)
        joined = f"{section}.{message}" if message.startswith(self.option) else f"{section}: {message}"
        return OptionError(joined, f"{section}.{self.option}")


@dataclasses.dataclass(frozen=True)
class Range:
    """The numbers an option accepts: ``low <= value <= high`` (``< high`` with ``high_open``).

    Examples:
        >>> Range(0, 1, high_open=True).describe("a number")
        'a number in [0, 1)'
        >>> POSITIVE.describe("an int"), POSITIVE.describe("a number", integral=False)
        ('a positive int', 'a number >= 1')
    """

    low: float | None = None
    """Smallest value (``None``: unbounded)."""
    high: float | None = None
    """Largest value (``None``: unbounded)."""
    high_open: bool = False
    """``high`` itself is excluded."""

    def __contains__(self, value: float) -> bool:
        if self.low is not None and not value >= self.low:
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self, noun: str, *, integral: bool = True) -> str:
        """``noun`` (``"an int"``, ``"numbers"``) qualified by the range; ``integral``: ints are meant."""
        article, _, bare = noun.partition(" ") if noun.startswith(("a ", "an ")) else ("", "", noun)
        if self.high is None and (self.low == 0 or self.low == 1 and integral):
            word = "positive" if self.low == 1 else "non-negative"
            return f"{'a ' if article else ''}{word} {bare}"
        if self.high is None:
            return f"{noun} >= {self.low:g}" if self.low is not None else noun
        low = "-inf" if self.low is None else f"{self.low:g}"
        return f"{noun} in [{low}, {self.high:g}{')' if self.high_open else ']'}"


POSITIVE = Range(low=1)
"""Ints ``>= 1``."""
NON_NEGATIVE = Range(low=0)
"""Numbers ``>= 0``."""

_show = reprlib.Repr()
_show.maxstring = _show.maxother = 60
_show.maxlist = _show.maxtuple = _show.maxdict = 6
_UNCHECKED = object()
_NOUNS = {int: ("an int", "ints"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans"), type(None): ("None", "Nones")}


def _unwrap(hint: Any) -> Any:
    return hint.type if isinstance(hint, dataclasses.InitVar) else hint


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _noun(hint: Any, rng: Range | None, plural: bool = False) -> str:
    """What ``hint`` accepts, in words (``"a positive int or None"``)."""
    hint = _unwrap(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None:
        hint = type(None)
    if hint in _NOUNS:
        noun = _NOUNS[hint][plural]
        return rng.describe(noun, integral=hint is int) if rng is not None and hint in (int, float) else noun
    if _is_union(hint):
        return " or ".join(_noun(arm, rng, plural) for arm in args)
    if origin is typing.Literal:
        names = [v if isinstance(v, str) else repr(v) for v in args]
        return repr(args[0]) if len(args) == 1 else f"one of {', '.join(names)}"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"{'lists' if plural else 'a list'} of {_noun(args[0], rng, plural=True)}"
        if args and all(arg == args[0] for arg in args):
            return f"{'lists' if plural else 'a list'} of {len(args)} {_noun(args[0], rng, plural=True)}"
        return f"{'lists' if plural else 'a list'} [{', '.join(_noun(arg, rng) for arg in args)}]"
    if origin in (collections.abc.Mapping, dict, collections.abc.MutableMapping):
        return "mappings" if plural else "a mapping"
    if isinstance(hint, type):
        return f"{hint.__name__} objects" if plural else f"a {hint.__name__}"
    return "values" if plural else "a value"


def _convert(value: Any, hint: Any, rng: Range | None) -> Any:
    """``value`` as ``hint`` stores it (lists become tuples), or ``_UNCHECKED`` when it does not fit."""
    hint = _unwrap(hint)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return value
    if hint is None or hint is type(None):
        return value if value is None else _UNCHECKED
    if hint is bool or hint is str:
        return value if isinstance(value, hint) else _UNCHECKED
    if hint is int or hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float) if hint is float else int):
            return _UNCHECKED
        if hint is float and not math.isfinite(value):
            return _UNCHECKED
        return value if rng is None or value in rng else _UNCHECKED
    if _is_union(hint):
        for arm in args:
            converted = _convert(value, arm, rng)
            if converted is not _UNCHECKED:
                return converted
        return _UNCHECKED
    if origin is typing.Literal:
        return value if any(value == v and type(value) is type(v) for v in args) else _UNCHECKED
    if origin is tuple:
        return _convert_tuple(value, args, rng)
    if origin in (collections.abc.Mapping, dict, collections.abc.MutableMapping):
        if not isinstance(value, Mapping):
            return _UNCHECKED
        key_hint, value_hint = args or (Any, Any)
        ok = all(_convert(k, key_hint, None) is not _UNCHECKED and _convert(v, value_hint, None) is not _UNCHECKED
                 for k, v in value.items())
        return value if ok else _UNCHECKED
    if origin is None and isinstance(hint, type):
        return value if isinstance(value, hint) else _UNCHECKED
    return value  # a typing form this checker does not model (Callable, TypeVar, ...)


def _convert_tuple(value: Any, args: tuple, rng: Range | None) -> Any:
    variadic = len(args) == 2 and args[1] is Ellipsis
    if variadic and args[0] is str and isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        return _UNCHECKED
    item_hints = [args[0]] * len(value) if variadic else list(args)
    if not args or len(item_hints) != len(value):
        return tuple(value) if not args else _UNCHECKED
    items = tuple(_convert(item, hint, rng) for item, hint in zip(value, item_hints))
    return _UNCHECKED if any(item is _UNCHECKED for item in items) else items


def check_value(value: Any, hint: Any, name: str, *, rng: Range | None = None) -> Any:
    """``value`` checked against the type hint ``hint`` (and ``rng``), as it is stored.

    Args:
        value: The value given.
        hint: The type hint (an evaluated one, as ``typing.get_type_hints`` returns).
        name: The option's dotted name, for the message.
        rng: Bounds of the numbers in ``value``.

    Returns:
        ``value``, with lists turned into tuples where the hint is a tuple.

    Raises:
        OptionError: ``"{name} must be {what}, got {value}"`` (and its type when the type is wrong).

    Examples:
        >>> check_value([0.9, 0.99], tuple[float, float], "train.betas", rng=Range(0, 1, high_open=True))
        (0.9, 0.99)
        >>> check_value(True, int, "train.seed")
        Traceback (most recent call last):
        ...
        tokenkit.typecheck.OptionError: train.seed must be an int, got True (bool)
    """
    converted = _convert(value, hint, rng)
    if converted is not _UNCHECKED:
        return converted
    wrong_type = _convert(value, hint, None) is _UNCHECKED and typing.get_origin(_unwrap(hint)) is not typing.Literal
    suffix = f" ({type(value).__name__})" if wrong_type else ""
    raise OptionError(f"{name} must be {_noun(hint, rng)}, got {_show.repr(value)}{suffix}", name)


@functools.cache
def type_hints(owner: type | Callable) -> Mapping[str, Any]:
    """The evaluated type hints of a dataclass's fields (``InitVar`` pseudo-fields included) or of a
    function's parameters; empty when they cannot be evaluated."""
    try:
        hints = typing.get_type_hints(owner)
    except (NameError, TypeError):
        return types.MappingProxyType({})
    hints.pop("return", None)
    if dataclasses.is_dataclass(owner):
        names = {f.name for f in dataclasses.fields(owner)}
        hints = {k: v for k, v in hints.items() if k in names or isinstance(v, dataclasses.InitVar)}
    return types.MappingProxyType(hints)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def check_fields(owner: type | Callable, values: Any, *, prefix: str = "",
                 ranges: Mapping[str, Range] | None = None) -> dict[str, Any]:
    """``values`` (field name -> value) checked against the fields of the dataclass ``owner`` (or the
    keyword parameters of a function).

    Args:
        owner: A dataclass, or a function with annotated keyword parameters.
        values: The values given (must be a mapping).
        prefix: Dotted name of the section the values come from (``"train"``, ``"data.config"``).
        ranges: Bounds of numeric fields, by field name.

    Returns:
        The values as stored (lists turned into tuples where a field is a tuple).

    Raises:
        OptionError: ``values`` is not a mapping, a key is not a field (the message lists the
            fields), or a value does not fit its field.
    """
    section = prefix or getattr(owner, "__name__", "the")
    if not isinstance(values, Mapping):
        raise OptionError(f"{section} must be a mapping of options, got {_show.repr(values)} "
                          f"({type(values).__name__})", prefix)
    hints = type_hints(owner)
    names = _field_names(owner)
    unknown = sorted(str(k) for k in values if k not in names)
    if unknown:
        raise OptionError(f"unknown {section} option(s) {', '.join(unknown)}; options are {', '.join(sorted(names))}",
                          _join(prefix, unknown[0]))
    ranges = ranges or {}
    return {name: check_value(value, hints[name], _join(prefix, name), rng=ranges.get(name)) if name in hints
            else value for name, value in values.items()}


def _field_names(owner: type | Callable) -> set[str]:
    if dataclasses.is_dataclass(owner):
        return {f.name for f in dataclasses.fields(owner) if f.init} | {
            k for k, v in type_hints(owner).items() if isinstance(v, dataclasses.InitVar)}
    import inspect

    return {p.name for p in inspect.signature(owner).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def check_dataclass(instance: Any, *, prefix: str = "", ranges: Mapping[str, Range] | None = None) -> None:
    """Check every field of a dataclass instance against its type hint (call it from ``__post_init__``).

    Converted values (lists turned into tuples) are stored back, also into frozen dataclasses.

    Raises:
        OptionError: The first field whose value does not fit, named ``prefix.field``.
    """
    hints, ranges = type_hints(type(instance)), ranges or {}
    for field in dataclasses.fields(instance):
        if field.name not in hints:
            continue
        value = getattr(instance, field.name)
        converted = check_value(value, hints[field.name], _join(prefix, field.name), rng=ranges.get(field.name))
        if converted is not value:
            object.__setattr__(instance, field.name, converted)


class InRange:
    """An argparse ``type`` for a numeric option with a [`Range`][tokenkit.typecheck.Range]:
    ``parser.add_argument("--batch-size", type=InRange(POSITIVE))``.

    Parsing only converts (a value that is not a number is argparse's own usage error); the command
    line checks the range with [`check`][tokenkit.typecheck.InRange.check] before any work starts, so
    that a value out of range is one ``ConfigError`` line.

    Args:
        rng: The values accepted.
        cast: ``int`` or ``float`` (floats must also be finite).

    Examples:
        >>> workers = InRange(NON_NEGATIVE)
        >>> workers("4")
        4
        >>> workers.check("--num-workers", -1)
        Traceback (most recent call last):
        ...
        tokenkit.typecheck.OptionError: --num-workers must be a non-negative int, got -1
    """

    def __init__(self, rng: Range, cast: type = int) -> None:
        self.rng, self.cast, self.__name__ = rng, cast, cast.__name__  # argparse names the type in its errors

    def __call__(self, text: str) -> Any:
        return self.cast(text)

    def check(self, option: str, value: Any) -> None:
        """Raise ``OptionError`` naming ``option`` unless ``value`` (``None``: not given) is in range."""
        if value is not None:
            check_value(value, self.cast, option, rng=self.rng)


def construct(cls: type, values: Any, *, prefix: str, ranges: Mapping[str, Range] | None = None) -> Any:
    """``cls(**values)`` for the section ``prefix``: the values are checked first
    ([`check_fields`][tokenkit.typecheck.check_fields]), and errors that ``cls`` raises itself
    are named within the section (``train.mixed_precision ...``, ``objective: ...``).

    Raises:
        OptionError: Not a mapping, an unknown key, a value of the wrong type or out of range, or a
            value ``cls`` refuses.
    """
    checked = check_fields(cls, values, prefix=prefix, ranges=ranges)
    try:
        return cls(**checked)
    except OptionError as err:
        raise err.within(prefix) from None
    except (TypeError, ValueError) as err:  # ConfigError is a ValueError
        raise OptionError(f"{prefix}: {err}", prefix) from None
