"""MkDocs hook: pages say ``<!-- tokenkit:parts-table -->`` or ``<!-- tokenkit:part-modules KIND [LEVEL] -->``
and get the registry's parts table, or one ``:::`` API section (heading LEVEL, default 2) per module
defining parts of KIND, so a new part file appears in the docs without editing them. The site name
carries the version (``tokenkit.version``)."""

import re

import tokenkit as tk
from tokenkit.registry import part_modules, parts_table

_MARKER = re.compile(r"<!-- tokenkit:(parts-table|part-modules (\w+)(?: (\d))?) -->")


def _expand(match: re.Match) -> str:
    if match.group(1) == "parts-table":
        return parts_table()
    kind = match.group(2)
    if kind not in tk.KINDS:
        raise ValueError(f"docs marker names unknown part kind {kind!r}")
    level = match.group(3) or "2"
    return "\n\n".join(f"::: {module}\n    options:\n      heading_level: {level}" for module in part_modules(kind))


def on_config(config):
    config["site_name"] = f"tokenkit {tk.__version__}"  # the version in the header and the page titles
    return config


def on_page_markdown(markdown, page, config, files):
    return _MARKER.sub(_expand, markdown)
