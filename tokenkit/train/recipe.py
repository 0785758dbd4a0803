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
    objective: {schedule: arccos}      # generator training options (MaskedTokensConfig; NextTokensConfig
                                       # for an autoregressive generator: {anneal_start: 0, anneal_end: 0};
                                       # DiffusionTokensConfig for a continuous-token one: {eval_draws: 4})

``tokenkit train RECIPE [section.key=value ...]`` runs it; overrides use dotted
keys (``train.steps=200``, ``knobs.num_tokens=16``, ``train.precision=fp32``) and YAML values.

The whole recipe is checked when it is read, before anything is built: unknown sections and
options, the type and range of every option (by the fields' type hints, see
[`tokenkit.typecheck`][tokenkit.typecheck]), the model name and knobs, the parts' options. Errors
name the file and the option by its dotted name (``recipe.yaml: train.steps must be a positive int,
got -3``) and the override that set it; syntax errors name the file, line and column.

``train.precision`` is ``auto`` unless a recipe says otherwise (bf16 where the
hardware runs it natively, fp16 with loss scaling on CUDA without bf16, fp32
elsewhere). Old recipes' ``mixed_precision: no`` / ``bf16`` / ``fp16`` are read
as ``precision: fp32`` / ``bf16`` / ``fp16`` with a ``FutureWarning``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import yaml

from tokenkit.api import build, spec
from tokenkit.errors import ConfigError, RegistryError, TokenkitError
from tokenkit.factory import build_part
from tokenkit.losses import recipes as loss_recipes
from tokenkit.pretrained import from_pretrained
from tokenkit.registry import get_part
from tokenkit.specs import Part, resolve_part
from tokenkit.train.config import RANGES, TrainConfig
from tokenkit.train.objectives import (
    DiffusionTokens,
    DiffusionTokensConfig,
    MaskedTokens,
    MaskedTokensConfig,
    NextTokens,
    NextTokensConfig,
)
from tokenkit.train.trainer import Trainer
from tokenkit.train.two_stage import init_stage2
from tokenkit.typecheck import (
    NON_NEGATIVE,
    POSITIVE,
    OptionError,
    Range,
    check_dataclass,
    check_fields,
    check_value,
    construct,
)
from tokenkit.weights.state import load_weights

SECTIONS = ("model", "knobs", "data", "eval", "train", "loss", "teacher", "init", "objective")

OBJECTIVE_RANGES = {"label_smoothing": Range(0, 1, high_open=True), "unmasked_weight": NON_NEGATIVE,
                    "anneal_start": NON_NEGATIVE, "anneal_end": NON_NEGATIVE, "eval_draws": POSITIVE}
"""Bounds of the ``objective`` options ([`MaskedTokensConfig`][tokenkit.train.objectives.MaskedTokensConfig],
[`NextTokensConfig`][tokenkit.train.objectives.NextTokensConfig],
[`DiffusionTokensConfig`][tokenkit.train.objectives.DiffusionTokensConfig])."""

OBJECTIVES = {MaskedTokensConfig: MaskedTokens, NextTokensConfig: NextTokens, DiffusionTokensConfig: DiffusionTokens}
"""The objective of each ``objective`` section type."""


@dataclasses.dataclass(frozen=True)
class TeacherConfig:
    """The ``teacher`` section: a frozen tokenizer (TiTok's MaskGIT-VQGAN).

    Raises:
        OptionError: An option of the wrong type.
        ConfigError: Neither ``model`` nor ``pretrained`` is given.

    Examples:
        >>> config = TeacherConfig(knobs={"image_size": 32})  # in a real run also pretrained=...
        >>> teacher = config.build()
        >>> type(teacher).__name__, teacher.training, teacher.codebook_size
        ('Tokenizer', False, 1024)
        >>> any(p.requires_grad for p in teacher.parameters())
        False
    """

    model: str | None = "maskgit-vqgan"
    """Model name (``None``: everything comes from ``pretrained``)."""
    knobs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """Knob overrides of the model (e.g. ``image_size``)."""
    pretrained: str | None = None
    """Weights: a file, folder or Hub source (``None``: random weights, for tests only)."""

    def __post_init__(self) -> None:
        check_dataclass(self)
        if self.model is None and self.pretrained is None:
            raise ConfigError("a teacher needs a model name, pretrained weights, or both")

    def build(self) -> Any:
        """The teacher tokenizer, frozen and in eval mode."""
        if self.model is None:
            model = from_pretrained(self.pretrained)
        else:
            model = build(self.model, pretrained=self.pretrained, **dict(self.knobs))
        return model.eval().requires_grad_(False)


@dataclasses.dataclass(frozen=True)
class InitConfig:
    """The ``init`` section: where the weights start.

    Raises:
        OptionError: An option of the wrong type, or ``pixel_decoder`` without ``weights``.

    Examples:
        >>> InitConfig(weights="runs/tiny-stage1/final", pixel_decoder="teacher")  # TiTok stage 2
        InitConfig(weights='runs/tiny-stage1/final', pixel_decoder='teacher')
        >>> InitConfig(pixel_decoder="teacher")
        Traceback (most recent call last):
        ...
        tokenkit.typecheck.OptionError: pixel_decoder: teacher needs init.weights (the stage-1 weights)
    """

    weights: str | None = None
    """A file, folder or Hub source loaded with ``tk.from_pretrained`` (e.g. stage 1's ``final/``)."""
    pixel_decoder: Literal["teacher"] | None = None
    """``"teacher"``: TiTok stage 2, the pixel decoder is the teacher's codebook + decoder
    ([`init_stage2`][tokenkit.train.two_stage.init_stage2]); ``None``: ``weights`` must fit exactly."""

    def __post_init__(self) -> None:
        check_dataclass(self)
        if self.pixel_decoder and self.weights is None:
            raise OptionError("pixel_decoder: teacher needs init.weights (the stage-1 weights)", "pixel_decoder")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A parsed recipe.

    Attributes:
        model: Tokenizer or generator model name.
        knobs: Knob overrides of the model.
        data: The training dataset part (default: ``bundled``).
        train: The training options.
        loss: Loss part, or ``None`` for the default loss.
        teacher: A frozen teacher (TiTok stage 1 targets, stage 2 pixel decoder), or ``None``.
        init: Where the weights start, or ``None`` (random).
        objective: Generator training options (masked, next-token or diffusion, by the generator), or ``None``.
        eval: Held-out dataset part, or ``None``.

    Examples:
        >>> recipe = parse_recipe({"model": "titok-tiny", "train": {"steps": 200}})
        >>> isinstance(recipe, Recipe), recipe.data, recipe.train.steps, recipe.teacher
        (True, Part('bundled'), 200, None)
    """

    model: str
    knobs: Mapping[str, Any]
    data: Part
    train: TrainConfig
    loss: Part | None = None
    teacher: TeacherConfig | None = None
    init: InitConfig | None = None
    objective: MaskedTokensConfig | NextTokensConfig | DiffusionTokensConfig | None = None
    eval: Part | None = None


def _read(path: Path) -> Any:
    """The file's YAML or JSON value; syntax errors name the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}:{err.colno}: JSON syntax error: {err.msg}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark, context = err.problem_mark or err.context_mark, ""
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        if err.context and err.context_mark is not None and err.problem:
            context = f" ({err.context} at line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
        raise ConfigError(f"{path}{where}: YAML syntax error: {err.problem or err.context}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: YAML error: {err}") from None


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict:
    """``["train.steps=200", "knobs.num_tokens=16"]`` applied to the raw recipe mapping (YAML-typed values).

    Raises:
        ConfigError: ``data`` is not a mapping, or an override is not ``section.key=value``.

    Examples:
        >>> data = {"model": "titok-tiny", "train": {"steps": 1000}}
        >>> apply_overrides(data, ["train.steps=200", "train.lr=2e-3", "knobs.num_tokens=16"])
        {'model': 'titok-tiny', 'train': {'steps': 200, 'lr': 0.002}, 'knobs': {'num_tokens': 16}}
        >>> data["train"]["steps"]  # the input is left as it was
        1000
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a recipe must be a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {type(data).__name__}")
    data = copy.deepcopy(dict(data))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key or "" in key.split("."):
            raise ConfigError(f"override {item!r} must look like section.key=value")
        *parents, leaf = key.split(".")
        node = data
        for name in parents:
            if node.get(name) is None:
                node[name] = {}
            node = node[name]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {name!r} is not a section")
        try:
            node[leaf] = _number(value, yaml.safe_load(value))
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({getattr(err, 'problem', err)})"
                              ) from None
    return data


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _number(text: str, value: Any) -> Any:
    """YAML reads an unquoted ``2e-3`` (no dot) as a string; command-line overrides mean the number."""
    plain = isinstance(value, str) and value == text.strip()
    return float(value) if plain and _NUMBER.fullmatch(value) else value


def parse_recipe(data: Mapping[str, Any]) -> Recipe:
    """Typed [`Recipe`][tokenkit.train.recipe.Recipe] from the raw mapping.

    Every section is checked before anything is built: unknown sections and options, the type and
    range of every option, the model name and its knobs, and the parts' own checks.

    Raises:
        OptionError: Naming the option by its dotted name (``train.steps``, ``data.config.size``).
        ConfigError: ``data`` is not a mapping.

    Examples:
        >>> recipe = parse_recipe({"model": "titok-tiny", "knobs": {"quantizer": "fsq"},
        ...                        "data": {"part": "bundled", "config": {"size": 32}},
        ...                        "train": {"steps": 200, "batch_size": 8}})
        >>> recipe.model, recipe.knobs, recipe.data, recipe.train.steps
        ('titok-tiny', {'quantizer': 'fsq'}, Part('bundled', size=32), 200)
        >>> parse_recipe({"model": "titok-tiny", "train": {"steps": -3}})
        Traceback (most recent call last):
        ...
        tokenkit.typecheck.OptionError: train.steps must be a positive int, got -3
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"a recipe must be a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in SECTIONS)
    if unknown:
        raise OptionError(f"unknown recipe section(s) {', '.join(unknown)}; sections are {', '.join(SECTIONS)}",
                          unknown[0])
    if "model" not in data:
        raise OptionError("model is missing: a recipe needs 'model: <tokenizer or generator model name>'", "model")
    model = check_value(data["model"], str, "model")
    knobs = dict(check_value(data.get("knobs") or {}, Mapping[str, Any], "knobs"))
    knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}
    _check_model(model, knobs, "")
    train = data.get("train") or {}
    for key in ("model", "knobs"):
        if isinstance(train, Mapping) and key in train:
            raise OptionError(f"train.{key} is the recipe's top-level {key!r}; give it there", f"train.{key}")
    train = check_fields(TrainConfig, train, prefix="train", ranges=RANGES)
    train_config = construct(TrainConfig, {**train, "model": model, "knobs": knobs}, prefix="train", ranges=RANGES)
    data_part = _part("dataset", data["data"], "data") if "data" in data else Part("bundled")
    loss_part = _loss_part(data["loss"]) if data.get("loss") else None
    eval_part = _part("dataset", data["eval"], "eval") if data.get("eval") else None
    teacher = _section(TeacherConfig, data, "teacher")
    if teacher is not None and teacher.model is not None:
        _check_model(teacher.model, teacher.knobs, "teacher.")
    init = _section(InitConfig, data, "init")
    objective = _section(_objective_config(model, knobs), data, "objective", OBJECTIVE_RANGES)
    if init is not None and init.pixel_decoder == "teacher" and teacher is None:
        raise OptionError("init.pixel_decoder: teacher needs a teacher section", "init.pixel_decoder")
    return Recipe(model=model, knobs=knobs, data=data_part, train=train_config, loss=loss_part,
                  teacher=teacher, init=init, objective=objective, eval=eval_part)


def _autoregressive(model: str, knobs: Mapping[str, Any]) -> bool:
    """Whether the model is an autoregressive generator (its ``objective`` section is a NextTokensConfig)."""
    generator = getattr(spec(model, **knobs), "generator", None)
    return generator is not None and get_part("generator", generator.name).autoregressive


def _continuous(model: str, knobs: Mapping[str, Any]) -> bool:
    """Whether the model is a continuous-token generator (``codebook_size`` None: MaskGen-KL; its ``objective``
    section is a DiffusionTokensConfig)."""
    generator = getattr(spec(model, **knobs), "generator", None)
    return generator is not None and getattr(get_part("generator", generator.name), "codebook_size", 0) is None


def _objective_config(model: str, knobs: Mapping[str, Any]) -> type:
    """The type of the ``objective`` section for the model: by the generator's kind.

    Examples:
        >>> [_objective_config(name, {}).__name__ for name in ("maskgit-tiny", "rar-tiny", "maskgen-vq-tiny",
        ...                                                     "maskgen-kl-tiny")]
        ['MaskedTokensConfig', 'NextTokensConfig', 'MaskedTokensConfig', 'DiffusionTokensConfig']
    """
    if _continuous(model, knobs):
        return DiffusionTokensConfig
    return NextTokensConfig if _autoregressive(model, knobs) else MaskedTokensConfig


def _check_model(model: str, knobs: Mapping[str, Any], prefix: str) -> None:
    """The model name and its knobs, checked by composing the model's spec (nothing is built)."""
    try:
        spec(model, **knobs)
    except RegistryError as err:
        raise OptionError(f"{prefix}model: {err}", f"{prefix}model") from None
    except ConfigError as err:
        first = str(err).split(" ", 1)[0]
        if first in knobs:  # "num_tokens must be ..." -> "knobs.num_tokens must be ..."
            raise OptionError(f"{prefix}knobs.{err}", f"{prefix}knobs.{first}") from None
        raise OptionError(f"{prefix}knobs: {err}", f"{prefix}knobs") from None


def _part(kind: str, value: Any, section: str) -> Part:
    """A ``{part: NAME, config: {...}}`` section as a ``Part``, checked: its name, its options' types
    (by the part config's type hints) and the part config's own checks."""
    if isinstance(value, Mapping) and "config" in value:
        check_value(value["config"], Mapping[str, Any], f"{section}.config")
    if isinstance(value, Mapping) and isinstance(value.get("part"), str):  # options named before Part checks them
        try:
            config_class = get_part(kind, value["part"]).Config
        except TokenkitError as err:
            raise OptionError(f"{section}: {err}", section) from None
        check_fields(config_class, value.get("config", {}), prefix=f"{section}.config")
    try:
        part = Part.from_dict(value)
        resolve_part(kind, part)
    except ConfigError as err:
        raise OptionError(f"{section}: {err}", section) from None
    return part


def _loss_part(value: Any) -> Part:
    """A loss ``Part`` dict, or ``{recipe: NAME, ...options}`` naming a function of
    [`tokenkit.losses.recipes`][tokenkit.losses.recipes] (``stage1``, ``stage2``,
    ``single_stage_vq``, ``single_stage_vae``) called with the options."""
    if isinstance(value, Mapping) and "recipe" in value:
        name = value["recipe"]
        if not isinstance(name, str) or name not in loss_recipes.RECIPES:
            raise OptionError(f"unknown loss recipe {name!r}; choose from {', '.join(loss_recipes.RECIPES)}",
                              "loss.recipe")
        function = loss_recipes.RECIPES[name]
        options = check_fields(function, {k: v for k, v in value.items() if k != "recipe"}, prefix="loss")
        return function(**options)
    return _part("loss", value, "loss")


def _section(cls: type, data: Mapping[str, Any], name: str, ranges: Mapping[str, Range] | None = None) -> Any:
    """``cls(**data[name])``, checked, with errors naming ``name.option`` (``None`` if absent)."""
    value = data.get(name)
    return None if value is None else construct(cls, value, prefix=name, ranges=ranges)


def _in_file(err: ConfigError, path: Path, overrides: Sequence[str]) -> ConfigError:
    """``err`` with the recipe file named first, and the command-line override that set the option."""
    message = f"{path}: {err}"
    if not isinstance(err, OptionError):
        return ConfigError(message)
    for item in overrides:
        key = item.partition("=")[0]
        if err.option == key or err.option.startswith((f"{key}.", f"{key}[")) or key.startswith(f"{err.option}."):
            message += f" (command-line override {item})"
            break
    return OptionError(message, err.option)


def load_recipe(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Recipe:
    """Read, override and parse a recipe file (``.yaml``/``.yml``/``.json``).

    Raises:
        ConfigError: Every error names the file first (``recipe.yaml: train.steps must be a positive
            int, got -3``); syntax errors also the line and column (``recipe.yaml:3:7: ...``); an
            error in an option that an override set also names the override.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from tokenkit.recipes import recipe_path
        >>> recipe = load_recipe(recipe_path("tiny-single-stage"), ["train.steps=10", "train.precision=fp32"])
        >>> recipe.model, recipe.train.steps, recipe.train.precision
        ('titok-tiny', 10, 'fp32')
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = Path(tmp) / "recipe.yaml"
        ...     _ = path.write_text("{model: titok-tiny, train: {steps: 100}}")
        ...     load_recipe(path, ["train.steps=0"])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.typecheck.OptionError: .../recipe.yaml: train.steps must be a positive int, got 0 (command-line ...
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe file {path} {'is a folder' if path.is_dir() else 'does not exist'}")
    data = _read(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a recipe must be a mapping of sections ({', '.join(SECTIONS)}), "
                          f"got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    try:
        return parse_recipe(data)
    except ConfigError as err:
        raise _in_file(err, path, overrides) from None


def run_recipe(recipe: Recipe, *, resume: bool = True, progress: bool = True) -> dict[str, float]:
    """Train the recipe; checkpoints and ``final/`` (EMA weights, loadable with ``tk.from_pretrained``)
    go to ``train.output_dir``. Resumes from the latest checkpoint there unless ``resume=False``.

    A ``teacher`` without ``init.pixel_decoder: teacher`` makes it a TiTok stage-1 run
    (targets = the teacher's codes); with it, stage 2 starts from ``init.weights`` plus the
    teacher's decoder. With an ``eval`` section the returned metrics include the final
    model's ``eval_*`` metrics.

    Args:
        recipe: The parsed recipe ([`load_recipe`][tokenkit.train.recipe.load_recipe]).
        resume: Continue from the latest checkpoint in ``train.output_dir`` when there is one.
        progress: Show a progress bar.

    Returns:
        The metrics of the last logged step (and ``eval_*`` with an ``eval`` section).

    Examples:
        Two steps of a tiny run:

        >>> import tempfile, tokenkit as tk
        >>> from pathlib import Path
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     recipe = parse_recipe({"model": "titok-tiny",
        ...                            "data": {"part": "bundled", "config": {"size": 32, "crops_per_epoch": 8}},
        ...                            "train": {"steps": 2, "batch_size": 4, "precision": "fp32", "output_dir": tmp}})
        ...     metrics = run_recipe(recipe, progress=False)
        ...     model = tk.from_pretrained(Path(tmp) / "final")
        ...     sorted(p.name for p in Path(tmp).iterdir())
        ['checkpoints', 'final', 'metrics.jsonl']
        >>> metrics["step"], "loss" in metrics, type(model).__name__
        (2, True, 'Tokenizer')
    """
    dataset = build_part("dataset", recipe.data)
    loss_module = build_part("loss", recipe.loss) if recipe.loss is not None else None
    teacher = recipe.teacher.build() if recipe.teacher is not None else None
    torch.manual_seed(recipe.train.seed)
    model = build(recipe.model, **dict(recipe.knobs))
    stage2 = recipe.init is not None and recipe.init.pixel_decoder == "teacher"
    if recipe.init is not None and recipe.init.weights is not None:
        try:
            weights = from_pretrained(recipe.init.weights).state_dict()
        except TokenkitError as err:
            hint = " (run the stage-1 recipe first, or point init.weights at its final/ folder)" if stage2 else ""
            raise type(err)(f"recipe init.weights: {err}{hint}") from None
        if stage2:
            init_stage2(model, weights, teacher)
        else:
            load_weights(model, weights)
    objective = None
    if recipe.objective is not None:
        objective = OBJECTIVES[type(recipe.objective)](recipe.objective)
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
