"""Training recipes: a YAML or JSON file turned into typed configs once, at the entry point.

A recipe file has these sections (only ``model`` is required)::

    model: titok-tiny                  # a tokenizer or generator model name
    knobs: {quantizer: fsq}            # its knob overrides
    data: {part: bundled, config: {size: 32}}   # a dataset part (kind "dataset")
    eval: {part: bundled, config: {seed: 1}}    # held-out data (train.eval_every; and at the end)
    train: {steps: 1000, batch_size: 32, lr: 3.0e-4}   # TrainConfig fields (precision: auto by default)
    loss: {part: composite, config: {...}}      # optional loss part (kind "loss")
    teacher: {model: maskgit-vqgan, pretrained: SRC}   # TiTok stage 1 targets / stage 2 pixel decoder
    init: {weights: SRC, pixel_decoder: teacher}       # start from weights (stage 2: + the teacher's decoder)
    objective: {schedule: arccos}      # generator training options (MaskedTokensConfig)

``tokenkit train RECIPE [section.key=value ...]`` runs it; overrides use dotted
keys (``train.steps=200``, ``knobs.num_tokens=16``, ``train.precision=fp32``) and YAML values.

``train.precision`` is ``auto`` unless a recipe says otherwise (bf16 where the
hardware runs it natively, fp16 with loss scaling on CUDA without bf16, fp32
elsewhere). Old recipes' ``mixed_precision: no`` / ``bf16`` / ``fp16`` are read
as ``precision: fp32`` / ``bf16`` / ``fp16`` with a ``FutureWarning``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tokenkit.errors import ConfigError, TokenkitError
from tokenkit.specs import Part
from tokenkit.train.objectives import MaskedTokensConfig
from tokenkit.train.config import TrainConfig

SECTIONS = ("model", "knobs", "data", "eval", "train", "loss", "teacher", "init", "objective")


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """The ``teacher`` section: a frozen tokenizer (TiTok's MaskGIT-VQGAN)."""

    model: str | None = "maskgit-vqgan"
    """Model name (``None``: everything comes from ``pretrained``)."""
    knobs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Knob overrides of the model (e.g. ``image_size``)."""
    pretrained: str | None = None
    """Weights: a file, folder or Hub source (``None``: random weights, for tests only)."""

    def __post_init__(self) -> None:
        if self.model is None and self.pretrained is None:
            raise ConfigError("teacher needs a model name, pretrained weights, or both")

    def build(self) -> Any:
        """The teacher tokenizer, frozen and in eval mode."""
        import tokenkit as tk

        if self.model is None:
            model = tk.from_pretrained(self.pretrained)
        else:
            model = tk.build(self.model, pretrained=self.pretrained, **dict(self.knobs))
        return model.eval().requires_grad_(False)


@dataclasses.dataclass(frozen=True)
class InitConfig:
    """The ``init`` section: where the weights start."""

    weights: str | None = None
    """A file, folder or Hub source loaded with ``tk.from_pretrained`` (e.g. stage 1's ``final/``)."""
    pixel_decoder: str | None = None
    """``"teacher"``: TiTok stage 2, the pixel decoder is the teacher's codebook + decoder
    ([`init_stage2`][tokenkit.train.two_stage.init_stage2]); ``None``: ``weights`` must fit exactly."""

    def __post_init__(self) -> None:
        if self.pixel_decoder not in (None, "teacher"):
            raise ConfigError(f"init.pixel_decoder must be 'teacher' or null, got {self.pixel_decoder!r}")
        if self.pixel_decoder and self.weights is None:
            raise ConfigError("init.pixel_decoder: teacher needs init.weights (the stage-1 weights)")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A parsed recipe."""

    model: str
    knobs: Mapping[str, Any]
    data: Part
    train: TrainConfig
    loss: Part | None = None
    teacher: TeacherConfig | None = None
    init: InitConfig | None = None
    objective: MaskedTokensConfig | None = None
    eval: Part | None = None


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
        node[leaf] = _number(yaml.safe_load(value))
    return data


def _number(value: Any) -> Any:
    """YAML reads ``2e-3`` (no dot) as a string; command-line overrides mean the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_recipe(data: Mapping[str, Any]) -> Recipe:
    """Typed [`Recipe`][tokenkit.train.recipe.Recipe] from the raw mapping (validates every section)."""
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise ConfigError(f"unknown recipe section(s) {', '.join(sorted(unknown))}; sections are {', '.join(SECTIONS)}")
    if not isinstance(data.get("model"), str):
        raise ConfigError("recipe needs 'model: <tokenizer model name>'")
    train = dict(data.get("train") or {})
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(train) - fields - {"mixed_precision"})  # the deprecated name is read (and mapped) by TrainConfig
    if bad:
        raise ConfigError(f"unknown train option(s) {', '.join(bad)}; options are {', '.join(sorted(fields))}")
    for key in ("betas", "freeze", "log_with"):
        if isinstance(train.get(key), list):
            train[key] = tuple(train[key])
    knobs = dict(data.get("knobs") or {})
    knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}
    try:
        data_part = Part.from_dict(data["data"]) if "data" in data else Part("bundled")
        loss_part = _loss_part(data["loss"]) if data.get("loss") else None
        eval_part = Part.from_dict(data["eval"]) if data.get("eval") else None
    except ConfigError as err:
        raise ConfigError(f"recipe: {err}") from None
    teacher = _section(TeacherConfig, data, "teacher")
    init = _section(InitConfig, data, "init")
    objective = _section(MaskedTokensConfig, data, "objective")
    if init is not None and init.pixel_decoder == "teacher" and teacher is None:
        raise ConfigError("recipe: init.pixel_decoder: teacher needs a teacher section")
    return Recipe(model=data["model"], knobs=knobs, data=data_part,
                  train=TrainConfig(model=data["model"], knobs=knobs, **train), loss=loss_part,
                  teacher=teacher, init=init, objective=objective, eval=eval_part)


def _loss_part(value: Any) -> Part:
    """A loss ``Part`` dict, or ``{recipe: NAME, ...options}`` naming a function of
    [`tokenkit.losses.recipes`][tokenkit.losses.recipes] (``stage1``, ``stage2``,
    ``single_stage_vq``, ``single_stage_vae``) called with the options."""
    from tokenkit.losses import recipes

    if isinstance(value, Mapping) and "recipe" in value:
        options = {k: v for k, v in value.items() if k != "recipe"}
        name = value["recipe"]
        if name not in recipes.RECIPES:
            raise ConfigError(f"unknown loss recipe {name!r}; choose from {', '.join(recipes.RECIPES)}")
        try:
            return recipes.RECIPES[name](**options)
        except TypeError as err:
            raise ConfigError(f"loss recipe {name!r}: {err}") from None
    return Part.from_dict(value)


def _section(cls: type, data: Mapping[str, Any], name: str) -> Any:
    """``cls(**data[name])`` with errors naming the section and its options (``None`` if absent)."""
    value = data.get(name)
    if value is None:
        return None
    fields = {f.name for f in dataclasses.fields(cls)}
    if not isinstance(value, Mapping) or set(value) - fields:
        bad = sorted(set(value) - fields) if isinstance(value, Mapping) else [repr(value)]
        raise ConfigError(f"recipe section {name!r}: unknown option(s) {', '.join(bad)}; "
                          f"options are {', '.join(sorted(fields))}")
    try:
        return cls(**value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"recipe section {name!r}: {err}") from None


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and parse a recipe file (``.yaml``/``.yml``/``.json``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file {path} does not exist")
    return parse_recipe(apply_overrides(_read(path), overrides))


def run_recipe(recipe: Recipe, *, resume: bool = True, progress: bool = True) -> dict[str, float]:
    """Train the recipe; checkpoints and ``final/`` (EMA weights, loadable with ``tk.from_pretrained``)
    go to ``train.output_dir``. Resumes from the latest checkpoint there unless ``resume=False``.

    A ``teacher`` without ``init.pixel_decoder: teacher`` makes it a TiTok stage-1 run
    (targets = the teacher's codes); with it, stage 2 starts from ``init.weights`` plus the
    teacher's decoder. With an ``eval`` section the returned metrics include the final
    model's ``eval_*`` metrics."""
    import torch

    import tokenkit as tk
    from tokenkit.factory import build_part
    from tokenkit.train.objectives import MaskedTokens
    from tokenkit.train.trainer import Trainer
    from tokenkit.train.two_stage import init_stage2

    dataset = build_part("dataset", recipe.data)
    loss_module = build_part("loss", recipe.loss) if recipe.loss is not None else None
    teacher = recipe.teacher.build() if recipe.teacher is not None else None
    torch.manual_seed(recipe.train.seed)
    model = tk.build(recipe.model, **dict(recipe.knobs))
    stage2 = recipe.init is not None and recipe.init.pixel_decoder == "teacher"
    if recipe.init is not None and recipe.init.weights is not None:
        try:
            weights = tk.from_pretrained(recipe.init.weights).state_dict()
        except TokenkitError as err:
            hint = " (run the stage-1 recipe first, or point init.weights at its final/ folder)" if stage2 else ""
            raise type(err)(f"recipe init.weights: {err}{hint}") from None
        if stage2:
            init_stage2(model, weights, teacher)
        else:
            from tokenkit.weights.state import load_weights

            load_weights(model, weights)
    objective = MaskedTokens(recipe.objective) if recipe.objective is not None else None
    eval_data = build_part("dataset", recipe.eval) if recipe.eval is not None else None
    trainer = Trainer(recipe.train, dataset, model=model, loss_module=loss_module,
                      teacher=None if stage2 else teacher, objective=objective, eval_data=eval_data)
    if resume and trainer.resume():
        if trainer.accelerator.is_main_process:
            print(f"resumed from step {trainer.step}")
    metrics = trainer.train(progress=progress)
    trainer.save()
    if eval_data is not None:  # the final model's held-out metrics, as eval_* next to the last training log
        metrics = {**metrics, **{f"eval_{k}": v for k, v in trainer.evaluate().items()}}
    if trainer.accelerator.is_main_process:
        trainer.trained_model().save_pretrained(Path(recipe.train.output_dir) / "final")
    trainer.finish()
    return metrics
