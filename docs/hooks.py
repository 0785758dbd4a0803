"""MkDocs hook: pages say ``<!-- tokenkit:parts-table -->`` or ``<!-- tokenkit:part-modules KIND -->``
and get the registry's parts table, or one ``:::`` API section per module defining parts of KIND,
so a new part file appears in the docs without editing them."""

import re

import tokenkit as tk
from tokenkit.registry import part_modules, parts_table

_MARKER = re.compile(r"<!-- tokenkit:(parts-table|part-modules (\w+)) -->")


def _expand(match: re.Match) -> str:
    if match.group(1) == "parts-table":
        return parts_table()
    kind = match.group(2)
    if kind not in tk.KINDS:
        raise ValueError(f"docs marker names unknown part kind {kind!r}")
    return "\n\n".join(f"::: {module}\n    options:\n      heading_level: 3" for module in part_modules(kind))


def on_page_markdown(markdown, page, config, files):
    return _MARKER.sub(_expand, markdown)
