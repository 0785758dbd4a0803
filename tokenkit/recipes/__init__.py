"""Bundled training recipes (YAML), usable by name: ``tokenkit train tiny-single-stage``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tokenkit.errors import ConfigError


def recipe_names() -> list[str]:
    """Names of the bundled recipes.

    Examples:
        >>> [name for name in recipe_names() if name.startswith("tiny-")]
        ['tiny-finetune-resolution', 'tiny-maskgen', 'tiny-maskgen-kl', 'tiny-maskgit', 'tiny-rar', 'tiny-single-stage', 'tiny-stage1', 'tiny-stage2', 'tiny-tatitok']
    """
    return sorted(p.name[: -len(".yaml")] for p in resources.files(__package__).iterdir() if p.name.endswith(".yaml"))


def recipe_path(name_or_path: str) -> Path:
    """A bundled recipe's file by name, or ``name_or_path`` itself when it is a file.

    Raises:
        ConfigError: Neither a file nor a bundled recipe (the bundled names are listed).

    Examples:
        >>> path = recipe_path("tiny-single-stage")
        >>> path.name, path.is_file()
        ('tiny-single-stage.yaml', True)
        >>> recipe_path(str(path)) == path  # a file is returned as it is
        True
        >>> recipe_path("tiny-stage3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: no recipe file 'tiny-stage3' and no bundled recipe of that name; bundled: ...
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    bundled = resources.files(__package__) / f"{name_or_path}.yaml"
    if bundled.is_file():
        return Path(str(bundled))
    raise ConfigError(f"no recipe file {name_or_path!r} and no bundled recipe of that name; "
                      f"bundled: {', '.join(recipe_names())}")
