"""Bundled training recipes (YAML), usable by name: ``tokenkit train tiny-single-stage``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tokenkit.errors import ConfigError


def recipe_names() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_path: str) -> Path:
    """A bundled recipe's file by name, or ``name_or_path`` itself when it is a file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = resources.files(__package__) / f"{name_or_path}.yaml"
    if bundled.is_file():
        return Path(str(bundled))
    raise ConfigError(f"no recipe file {name_or_path!r} and no bundled recipe of that name; "
                      f"bundled: {', '.join(recipe_names())}")
