"""Typed options: every recipe section and TrainConfig field is checked for its type and range when
parsed, errors name the option by its dotted name and the file, syntax errors the file and line."""

from __future__ import annotations

import dataclasses
import math
import pickle
import types
import typing
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokenkit as tk
from tokenkit.precision import PRECISIONS
from tokenkit.registry import get_part
from tokenkit.train.config import NONFINITE, Precision, TrainConfig
from tokenkit.train.objectives import MaskedTokensConfig
from tokenkit.train.recipe import InitConfig, TeacherConfig, load_recipe, parse_recipe
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

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NAN_INF = st.sampled_from([math.nan, math.inf, -math.inf])
LISTS = st.lists(st.integers(), max_size=2)
DICTS = st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)


def wrong(hint: Any) -> st.SearchStrategy:
    """Values that do not fit ``hint`` (written out per hint, independently of the checker)."""
    args = typing.get_args(hint)
    if hint is int:
        return st.one_of(st.text(max_size=6), st.floats(allow_nan=True), st.booleans(), st.none(), LISTS, DICTS)
    if hint is float:
        return st.one_of(st.text(max_size=6), NAN_INF, st.booleans(), st.none(), LISTS, DICTS)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (arm,) = (a for a in args if a is not type(None))
        return wrong(arm).filter(lambda v: v is not None)
    if hint is str:
        return st.one_of(st.integers(), st.floats(), st.booleans(), st.none(), LISTS, DICTS)
    if hint is bool:
        return st.one_of(st.integers(), st.floats(), st.text(max_size=6), st.none(), LISTS, DICTS)
    if typing.get_origin(hint) is Literal:
        return st.one_of(st.text(max_size=6).filter(lambda t: t not in args), st.integers(), st.none(), LISTS)
    if hint == tuple[str, ...]:
        bad_item = st.one_of(st.integers(), st.floats(), st.booleans(), st.none())
        return st.one_of(bad_item, st.lists(bad_item, min_size=1, max_size=3), DICTS)
    if hint == tuple[float, float]:
        good = st.floats(0, 0.5)
        return st.one_of(st.text(max_size=6), st.integers(), st.none(), st.lists(good, max_size=1),
                         st.lists(good, min_size=3, max_size=4), st.lists(st.text(max_size=2), min_size=2, max_size=2))
    if hint == int | tuple[int, int]:  # an image size: a side or (H, W)
        return st.one_of(st.text(max_size=6), st.floats(allow_nan=True), st.booleans(), st.none(), DICTS,
                         st.lists(st.integers(1, 9), max_size=1), st.lists(st.integers(1, 9), min_size=3, max_size=4),
                         st.lists(st.text(max_size=2), min_size=2, max_size=2))
    if typing.get_origin(hint) in (Mapping, dict) or hint == Mapping[str, Any]:
        return st.one_of(st.text(max_size=6), st.integers(), LISTS)
    raise AssertionError(f"no wrong values written for {hint}")


TRAIN_HINTS = {k: v for k, v in typing.get_type_hints(TrainConfig).items()
               if k in {f.name for f in dataclasses.fields(TrainConfig)} and k not in ("model", "knobs")}
INTERVALS = ("checkpoint_every", "sample_every", "eval_every", "log_every", "warmup_steps", "num_workers")


def _parse(**sections: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return parse_recipe({"model": "titok-tiny", **sections})


# --- the checker --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("hint, value, stored", [
    (int, 3, 3), (float, 3, 3), (float, 0.5, 0.5), (str, "a", "a"), (bool, False, False), (None, None, None),
    (int | None, None, None), (tuple[str, ...], ["a", "b"], ("a", "b")), (tuple[str, ...], "a", ("a",)),
    (tuple[float, float], [0.9, 1], (0.9, 1)), (Literal["x", "y"], "y", "y"), (Mapping[str, Any], {"a": [1]}, {"a": [1]}),
    (Any, object, object), (tk.Part, tk.Part("vq"), tk.Part("vq")),
])
def test_values_that_fit_are_stored_as_their_hint_says(hint, value, stored):
    assert check_value(value, hint, "x") == stored


@pytest.mark.parametrize("hint, value, message", [
    (int, True, "x must be an int, got True (bool)"),
    (int, 3.0, "x must be an int, got 3.0 (float)"),
    (float, True, "x must be a number, got True (bool)"),
    (float, math.inf, "x must be a number, got inf (float)"),
    (str, 5, "x must be a string, got 5 (int)"),
    (bool, 1, "x must be true or false, got 1 (int)"),
    (int | None, "a", "x must be an int or None, got 'a' (str)"),
    (tuple[str, ...], [1], "x must be a list of strings, got [1] (list)"),
    (tuple[float, float], [0.5], "x must be a list of 2 numbers, got [0.5] (list)"),
    (Literal["x", "y"], "z", "x must be one of x, y, got 'z'"),
    (Mapping[str, Any], {1: 2}, "x must be a mapping, got {1: 2} (dict)"),
])
def test_values_that_do_not_fit_are_named_with_what_was_expected(hint, value, message):
    with pytest.raises(OptionError) as info:
        check_value(value, hint, "x")
    assert str(info.value) == message and info.value.option == "x"


def test_ranges_are_part_of_the_description():
    assert Range(0, 1, high_open=True).describe("a number", integral=False) == "a number in [0, 1)"
    with pytest.raises(OptionError, match=r"^train.steps must be a positive int, got 0$"):
        check_value(0, int, "train.steps", rng=POSITIVE)
    with pytest.raises(OptionError, match=r"^d must be a non-negative number or None, got -1$"):
        check_value(-1, float | None, "d", rng=NON_NEGATIVE)
    with pytest.raises(OptionError, match=r"^b must be a list of 2 numbers in \[0, 1\), got \(0.5, 1\)$"):
        check_value((0.5, 1), tuple[float, float], "b", rng=Range(0, 1, high_open=True))
    with pytest.raises(OptionError, match=r"^s must be a positive int, got 'long.*\.\.\..*' \(str\)$"):
        check_value("long" * 40, int, "s", rng=POSITIVE)  # long values are shortened: one line


def test_check_fields_refuses_unknown_keys_and_non_mappings():
    with pytest.raises(OptionError, match=r"^unknown train option\(s\) stepz; options are .*steps") as info:
        check_fields(TrainConfig, {"stepz": 1}, prefix="train")
    assert info.value.option == "train.stepz"
    with pytest.raises(OptionError, match=r"^train must be a mapping of options, got \[1\] \(list\)$"):
        check_fields(TrainConfig, [1], prefix="train")
    assert check_fields(TrainConfig, {"mixed_precision": "no"}, prefix="train") == {"mixed_precision": "no"}


def test_construct_names_the_errors_of_the_class_itself_within_the_section():
    with pytest.raises(OptionError, match=r"^train\.mixed_precision=.* contradicts"):
        construct(TrainConfig, {"mixed_precision": "bf16", "precision": "fp32"}, prefix="train")
    with pytest.raises(OptionError, match=r"^objective: unknown mask schedule 'zigzag'"):
        construct(MaskedTokensConfig, {"schedule": "zigzag"}, prefix="objective")


def test_option_errors_pickle_with_their_option():
    err = pickle.loads(pickle.dumps(OptionError("train.steps must be ...", "train.steps")))
    assert isinstance(err, tk.ConfigError) and err.option == "train.steps" and str(err) == "train.steps must be ..."


def test_every_field_of_the_recipe_sections_has_a_hint_the_checker_models():
    for cls in (TrainConfig, TeacherConfig, InitConfig, MaskedTokensConfig):
        for name, hint in typing.get_type_hints(cls).items():
            if isinstance(hint, dataclasses.InitVar):
                hint = hint.type
            with pytest.raises(OptionError):
                check_value(object(), hint, name)


def test_precision_and_on_nonfinite_choices():
    assert typing.get_args(Precision) == PRECISIONS and NONFINITE == ("stop", "skip")


@pytest.mark.parametrize("kind", ["dataset", "loss"])
def test_registered_part_configs_fit_their_own_hints(kind):
    for name in tk.list_parts(kind):
        config = get_part(kind, name).Config
        try:
            instance = config()
        except (TypeError, ValueError):
            continue  # no defaults for every field (e.g. composite needs terms)
        check_dataclass(instance)


# --- TrainConfig and recipes: types ---------------------------------------------------------------------------------

@FAST
@given(data=st.data())
def test_wrong_typed_train_options_are_refused_naming_the_option(data):
    field = data.draw(st.sampled_from(sorted(TRAIN_HINTS)))
    value = data.draw(wrong(TRAIN_HINTS[field]))
    with pytest.raises(tk.ConfigError) as direct:
        TrainConfig(**{field: value})
    assert str(direct.value).startswith(field)
    with pytest.raises(tk.ConfigError) as parsed:
        _parse(train={field: value})
    assert str(parsed.value).startswith(f"train.{field}") and "\n" not in str(parsed.value)


@FAST
@given(field=st.sampled_from(INTERVALS), value=st.integers(max_value=-1))
def test_negative_intervals_are_refused(field, value):
    with pytest.raises(tk.ConfigError, match=rf"^train\.{field} must be a (non-negative|positive) int, got {value}$"):
        _parse(train={field: value})


@pytest.mark.parametrize("field, zero_ok", [("checkpoint_every", True), ("sample_every", True), ("eval_every", True),
                                            ("warmup_steps", True), ("num_workers", True), ("log_every", False),
                                            ("steps", False), ("batch_size", False), ("grad_accum", False),
                                            ("sample_count", False)])
def test_zero_is_an_interval_meaning_never_where_the_field_says_so(field, zero_ok):
    if zero_ok:
        assert getattr(_parse(train={field: 0}).train, field) == 0
    else:
        with pytest.raises(tk.ConfigError, match=rf"^train\.{field} must be a positive int, got 0$"):
            _parse(train={field: 0})


@pytest.mark.parametrize("field, value", [("lr", -1e-4), ("ema_decay", 1.0), ("betas", [0.9, 1.0]), ("d_lr", -1),
                                          ("clip", -0.5)])
def test_numbers_out_of_range_are_refused(field, value):
    with pytest.raises(tk.ConfigError, match=rf"^train\.{field} must be "):
        _parse(train={field: value})


SECTION_CLASSES = {"teacher": TeacherConfig, "init": InitConfig, "objective": MaskedTokensConfig}
SECTION_FIELDS = [(section, name) for section, cls in SECTION_CLASSES.items()
                  for name in typing.get_type_hints(cls)]


@FAST
@given(data=st.data())
def test_wrong_typed_section_options_are_refused_naming_the_option(data):
    section, field = data.draw(st.sampled_from(SECTION_FIELDS))
    value = data.draw(wrong(typing.get_type_hints(SECTION_CLASSES[section])[field]))
    extra = {"teacher": {"model": "maskgit-vqgan", "knobs": {"image_size": 32}}} if section == "init" else {}
    with pytest.raises(tk.ConfigError) as info:
        _parse(**{section: {field: value}}, **extra)
    assert str(info.value).startswith(f"{section}.{field}")


BUNDLED_HINTS = typing.get_type_hints(get_part("dataset", "bundled").Config)


@FAST
@given(data=st.data())
def test_wrong_typed_part_options_are_refused_naming_the_option(data):
    field = data.draw(st.sampled_from(sorted(BUNDLED_HINTS)))
    value = data.draw(wrong(BUNDLED_HINTS[field]))
    section = data.draw(st.sampled_from(["data", "eval"]))
    with pytest.raises(tk.ConfigError) as info:
        _parse(**{section: {"part": "bundled", "config": {field: value}}})
    assert str(info.value).startswith(f"{section}.config.{field}")


@pytest.mark.parametrize("sections, message", [
    ({"trian": {}}, r"^unknown recipe section\(s\) trian; sections are model, knobs, data"),
    ({"train": {"stepz": 1}}, r"^unknown train option\(s\) stepz; options are "),
    ({"teacher": {"teachr": 1}}, r"^unknown teacher option\(s\) teachr; options are knobs, model, pretrained$"),
    ({"objective": {"smoothing": 1}}, r"^unknown objective option\(s\) smoothing; options are label_smoothing"),
    ({"data": {"part": "bundled", "config": {"sizee": 8}}}, r"^unknown data.config option\(s\) sizee; options are "),
    ({"loss": {"recipe": "stage2", "lpips": False}}, r"^unknown loss option\(s\) lpips; options are "),
    ({"train": 5}, r"^train must be a mapping of options, got 5 \(int\)$"),
    ({"knobs": {"num_tokenz": 4}}, r"^knobs: model 'titok-tiny' has no knob\(s\) num_tokenz"),
    ({"knobs": {"num_tokens": 0}}, r"^knobs\.num_tokens must be a positive int, got 0$"),
    ({"model": "titok-tny"}, r"^model: no model named 'titok-tny'"),
    ({"data": {"part": "bundled", "config": {"size": 0}}}, r"^data: invalid options for dataset 'bundled'"),
    ({"data": {"part": "bundld", "config": {}}}, r"^data: no dataset named 'bundld'"),
    ({"loss": {"part": "recon", "config": {"kind": "l3"}}}, r"^loss\.config\.kind must be one of l1, l2, got 'l3'$"),
    ({"loss": {"recipe": "stage2", "lpips_pretrained": "no"}}, r"^loss\.lpips_pretrained must be true or false"),
    ({"objective": {"label_smoothing": 1.5}}, r"^objective\.label_smoothing must be a number in \[0, 1\), got 1\.5$"),
    ({"init": {"pixel_decoder": "student"}}, r"^init\.pixel_decoder must be 'teacher' or None, got 'student'"),
    ({"init": {"pixel_decoder": "teacher"}}, r"^init\.pixel_decoder: teacher needs init\.weights"),
    ({"train": {"log_with": ["mlflow"]}}, r"^train\.log_with has an unknown tracker 'mlflow'"),
    ({"train": {"mixed_precision": "fp8"}}, r"^train\.mixed_precision is deprecated"),
    ({"train": {"model": "titok-l32"}}, r"^train\.model is the recipe's top-level 'model'"),
])
def test_recipe_errors_name_the_dotted_option(sections, message):
    with pytest.raises(tk.ConfigError, match=message):
        _parse(**sections)


def test_a_recipe_needs_a_model_name():
    with pytest.raises(tk.ConfigError, match=r"^model is missing"):
        parse_recipe({})
    with pytest.raises(tk.ConfigError, match=r"^model must be a string, got 5 \(int\)$"):
        parse_recipe({"model": 5})


# --- files and overrides --------------------------------------------------------------------------------------------

def test_errors_in_a_recipe_file_name_the_file_and_the_override(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text("model: titok-tiny\ntrain:\n  steps: -3\n")
    with pytest.raises(tk.ConfigError, match=rf"^{path}: train\.steps must be a positive int, got -3$"):
        load_recipe(path)
    path.write_text("model: titok-tiny\ntrain:\n  steps: 10\n")
    with pytest.raises(tk.ConfigError) as info:
        load_recipe(path, ["train.log_every=-1"])
    assert str(info.value) == (f"{path}: train.log_every must be a positive int, got -1 "
                               "(command-line override train.log_every=-1)")
    with pytest.raises(tk.ConfigError, match=r"override train\.stepz=3\)$"):
        load_recipe(path, ["train.stepz=3"])
    with pytest.raises(tk.ConfigError, match=r"^override 'train\.betas=\[0\.9': the value is not valid YAML"):
        load_recipe(path, ["train.betas=[0.9"])
    with pytest.raises(tk.ConfigError, match=r"got 'fast' \(str\) \(command-line override train\.lr=fast\)$"):
        load_recipe(path, ["train.lr=fast"])
    assert load_recipe(path, ["train.lr=2e-3", "train.output_dir='2024'"]).train.lr == 2e-3
    path.write_text("- model\n")
    with pytest.raises(tk.ConfigError, match=rf"^{path}: a recipe must be a mapping of sections"):
        load_recipe(path)
    with pytest.raises(tk.ConfigError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


@FAST
@given(before=st.integers(0, 8), indent=st.integers(0, 3))
def test_yaml_syntax_errors_name_the_file_and_line(tmp_path_factory, before, indent):
    path = tmp_path_factory.mktemp("yaml") / "recipe.yaml"
    lines = ["model: titok-tiny"] + [f"# comment {i}" for i in range(before)] + [" " * indent + "\tbad: 1"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(tk.ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:{before + 2}:{indent + 1}: YAML syntax error: ")
    assert "\n" not in str(info.value)


def test_yaml_errors_also_name_where_the_construct_began(tmp_path):
    path = tmp_path / "recipe.yml"
    path.write_text("model: titok-tiny\ntrain: {steps: 10\nknobs: {}\n")
    with pytest.raises(tk.ConfigError, match=rf"^{path}:3:6: YAML syntax error: .*flow mapping at line 2, column 8\)$"):
        load_recipe(path)


@FAST
@given(before=st.integers(0, 8), column=st.integers(0, 6))
def test_json_syntax_errors_name_the_file_line_and_column(tmp_path_factory, before, column):
    path = tmp_path_factory.mktemp("json") / "recipe.json"
    lines = ["{", '"model": "titok-tiny",'] + ['"knobs": {},'] * before + [" " * column + '"train": ,', "}"]
    path.write_text("\n".join(lines))
    with pytest.raises(tk.ConfigError) as info:
        load_recipe(path)
    assert str(info.value).startswith(f"{path}:{before + 3}:{column + 10}: JSON syntax error: ")


def test_a_valid_json_recipe_parses_with_lists_as_tuples(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text('{"model": "titok-tiny", "train": {"betas": [0.9, 0.95], "freeze": "encoder", "steps": 5}}')
    recipe = load_recipe(path)
    assert recipe.train.betas == (0.9, 0.95) and recipe.train.freeze == ("encoder",) and recipe.train.steps == 5
