"""What can be set, with its type, default and help: the knobs of a named model
([`knobs`][tokenkit.options.knobs]) and the options of a registered part
([`part_options`][tokenkit.options.part_options]), read from the builder's signature and
docstring and from the part's ``Config`` dataclass.

Examples:
    >>> import tokenkit as tk
    >>> [k.name for k in tk.knobs("titok-tiny")][:3]
    ['image_size', 'patch_size', 'num_tokens']
    >>> tk.part_options("quantizer", "vq")[0]
    Option(name='codebook_size', type='int', default=4096, help='Number of codes ``K``.')
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
from collections.abc import Callable
from typing import Any, NamedTuple

from tokenkit.registry import get_model, get_part


class Option(NamedTuple):
    """One settable value.

    Examples:
        >>> import tokenkit as tk
        >>> option = tk.knobs("titok")[2]
        >>> option.name, option.type, option.default
        ('num_tokens', 'int', 32)

    Attributes:
        name: Its name (a keyword of ``tk.build`` / ``tk.spec``, or a ``Part`` option).
        type: Its annotation, as written in the code.
        default: The value used when it is not set (for a named model: the model's own value).
        help: One paragraph from the docstring (empty when there is none).
    """

    name: str
    type: str
    default: Any
    help: str


def _annotation(value: Any) -> str:
    if value is inspect.Parameter.empty or value is dataclasses.MISSING:
        return ""
    return value if isinstance(value, str) else getattr(value, "__name__", repr(value))


def argument_docs(function: Callable) -> dict[str, str]:
    """``{argument: help}`` from the ``Args:`` section of a Google-style docstring."""
    doc = inspect.getdoc(function) or ""
    section = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)+)", doc, re.M)
    found: dict[str, str] = {}
    if section:
        for match in re.finditer(r"^    (\*{0,2}\w+)(?: \([^)]*\))?: (.*(?:\n {8,}.*)*)", section.group(1), re.M):
            found[match.group(1).lstrip("*")] = " ".join(match.group(2).split())
    return found


def field_docs(config_cls: type) -> dict[str, str]:
    """``{field: help}`` from the string literal after each field of a dataclass (and its bases)."""
    found: dict[str, str] = {}
    for cls in reversed(config_cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                found[node.target.id] = " ".join(after.value.value.split())
    return found


def knobs(name: str) -> list[Option]:
    """The knobs of a named model: its builder's keywords, with the model's own values as defaults.

    Raises:
        RegistryError: Unknown model (closest names suggested).

    Examples:
        >>> import tokenkit as tk
        >>> {k.name: k.default for k in tk.knobs("titok-l32")}["num_tokens"]
        32
        >>> next(k for k in tk.knobs("titok-l32") if k.name == "legacy").help
        'The released L-32/B-64/S-128 architecture: legacy encoder reshape and a ``proxy`` head predicting MaskGIT-VQGAN codes.'
    """
    entry = get_model(name)
    docs = argument_docs(entry.builder)
    return [Option(p.name, _annotation(p.annotation), entry.knobs.get(p.name, p.default), docs.get(p.name, ""))
            for p in inspect.signature(entry.builder).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def part_options(kind: str, name: str) -> list[Option]:
    """The options of a registered part: the fields of its ``Config``.

    A default that is a factory (a list, a sub-part) is shown as the value it makes;
    an option without default is required.

    Raises:
        RegistryError: Unknown kind or name (closest names suggested).

    Examples:
        >>> import tokenkit as tk
        >>> [(o.name, o.default) for o in tk.part_options("quantizer", "fsq")][:1]
        [('levels', (8, 5, 5, 5))]
    """
    config_cls = get_part(kind, name).Config
    docs = field_docs(config_cls)
    options = []
    for field in dataclasses.fields(config_cls):
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        options.append(Option(field.name, _annotation(field.type), default, docs.get(field.name, "")))
    return options
