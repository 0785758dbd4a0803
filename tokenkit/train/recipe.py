"""Training recipes: a YAML or JSON file turned into typed configs once, at the entry point.

A recipe file has four sections::

    model: titok-tiny                  # a tokenizer model name
    knobs: {quantizer: fsq}            # its knob overrides
    data: {part: bundled, config: {size: 32}}   # a dataset part (kind "dataset")
    train: {steps: 1000, batch_size: 32, lr: 3.0e-4}   # TrainConfig fields
    loss: {part: composite, config: {...}}      # optional loss part (kind "loss")

``tokenkit train RECIPE [section.key=value ...]`` runs it; overrides use dotted
keys (``train.steps=200``, ``knobs.num_tokens=16``) and YAML values.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenkit.errors import ConfigError
from tokenkit.specs import Part
from tokenkit.train.trainer import TrainConfig

SECTIONS = ("model", "knobs", "data", "train", "loss")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A parsed recipe."""

    model: str
    knobs: Mapping[str, Any]
    data: Part
    train: TrainConfig
    loss: Part | None = None


def _read(path: Path) -> dict:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping with sections {', '.join(SECTIONS)}")
    return data


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """``["train.steps=200", "knobs.num_tokens=16"]`` applied to the raw recipe mapping (YAML-typed values)."""
    import yaml

    data = json.loads(json.dumps(data))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        *parents, leaf = key.split(".")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {name!r} is not a section")
        node[leaf] = yaml.safe_load(value)
    return data


def parse_recipe(data: Mapping[str, Any]) -> Recipe:
    """Typed [`Recipe`][tokenkit.train.recipe.Recipe] from the raw mapping (validates every section)."""
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown recipe section(s) {', '.join(sorted(unknown))}; sections are {', '.join(SECTIONS)}")
    if not isinstance(data.get("model"), str):
        raise ConfigError("recipe needs 'model: <tokenizer model name>'")
    train = dict(data.get("train") or {})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(train) - fields)
    if bad:
        raise ConfigError(f"unknown train option(s) {', '.join(bad)}; options are {', '.join(sorted(fields))}")
    for key in ("betas",):
        if key in train:
            train[key] = tuple(train[key])
    knobs = dict(data.get("knobs") or {})
    knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}
    try:
        data_part = Part.from_dict(data["data"]) if "data" in data else Part("bundled")
        loss_part = Part.from_dict(data["loss"]) if data.get("loss") else None
    except ConfigError as err:
        raise ConfigError(f"recipe: {err}") from None
    return Recipe(model=data["model"], knobs=knobs, data=data_part,
                  train=TrainConfig(model=data["model"], knobs=knobs, **train), loss=loss_part)


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and parse a recipe file (``.yaml``/``.yml``/``.json``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist")
    return parse_recipe(apply_overrides(_read(path), overrides))


def run_recipe(recipe: Recipe, *, resume: bool = True, progress: bool = True) -> dict[str, float]:
    """Train the recipe; checkpoints and ``final/`` (EMA weights, loadable with ``tk.from_pretrained``)
    go to ``train.output_dir``. Resumes from the latest checkpoint there unless ``resume=False``."""
    from tokenkit.factory import build_part
    from tokenkit.train.trainer import Trainer

    dataset = build_part("dataset", recipe.data)
    loss_module = build_part("loss", recipe.loss) if recipe.loss is not None else None
    trainer = Trainer(recipe.train, dataset, loss_module=loss_module)
    if resume and trainer.resume():
        print(f"resumed from step {trainer.step}")
    metrics = trainer.train(progress=progress)
    trainer.save()
    if trainer.accelerator.is_main_process:
        trainer.trained_model().save_pretrained(Path(recipe.train.output_dir) / "final")
    return metrics
