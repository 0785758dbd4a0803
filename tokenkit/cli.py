"""The ``tokenkit`` command line: ``list``, ``info``, ``generate``, ``ablate``, ``demo``, ``train`` and
``pretokenize``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import tokenkit as tk
from tokenkit.errors import TokenkitError


def _count(module) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def model_info(name: str) -> dict:
    """Composition, parameters per part, tokens and bits per image of a named model (built on ``meta``)."""
    tok = tk.build(name, device="meta")
    parts = {kind: _count(getattr(tok, kind)) for kind in ("encoder", "quantizer", "decoder", "pixel_decoder")
             if getattr(tok, kind) is not None}
    return {
        "name": name,
        "parameters": _count(tok),
        "parameters_per_part": parts,
        "image_size": tok.image_size,
        "tokens_per_image": tok.num_tokens,
        "codebook_size": tok.codebook_size,
        "bits_per_image": tok.bits_per_image,
        "spec": tok.spec.to_dict(),
    }


def _print_info(info: dict) -> None:
    print(f"{info['name']}")
    print(f"  parameters        {info['parameters']:,}")
    for kind, count in info["parameters_per_part"].items():
        part = info["spec"][kind]["part"]
        print(f"    {kind:<15} {count:>13,}  ({part})")
    print(f"  image size        {info['image_size']}x{info['image_size']}")
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


def generate_command(args: argparse.Namespace) -> None:
    """``tokenkit generate``: class labels -> PNG grid (and optionally one PNG per sample)."""
    import contextlib

    import torch
    from torchvision.utils import make_grid, save_image

    try:
        labels = [int(v) for v in args.labels.split(",") if v.strip()]
    except ValueError:
        raise tk.ConfigError(f"--labels must be comma-separated class ids, got {args.labels!r}") from None
    if not labels:
        raise tk.ConfigError("--labels is empty")
    generator = _load(args.generator, args.generator_weights, args.device)
    tokenizer = _load(args.tokenizer, args.tokenizer_weights, args.device)
    sampling = {k: getattr(args, k) for k in ("steps", "guidance", "temperature", "guidance_decay", "schedule")
                if getattr(args, k) is not None}
    autocast = (torch.autocast(torch.device(args.device).type, dtype=torch.bfloat16) if args.bf16
                else contextlib.nullcontext())
    images = []
    with autocast:
        for start in range(0, len(labels), args.batch_size):
            chunk = labels[start : start + args.batch_size]
            images.append(tk.generate_images(generator, tokenizer, chunk, seed=args.seed + start, progress=True,
                                             **sampling).float().cpu())
    images = torch.cat(images)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(make_grid(images, nrow=args.nrow or max(1, int(len(labels) ** 0.5 + 0.999))), out)
    print(f"wrote {out} ({len(labels)} samples)")
    if args.separate:
        folder = Path(args.separate)
        folder.mkdir(parents=True, exist_ok=True)
        for i, (label, image) in enumerate(zip(labels, images)):
            save_image(image, folder / f"{i:05d}_class{label}.png")
        print(f"wrote {len(labels)} PNGs to {folder}")


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
    result = tk.ablate(args.base, throughput=not args.no_throughput, batch=args.batch, repeats=args.repeats,
                       device=args.device, progress=True, **axes)
    print(result.to_markdown())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "ablation.csv")
    (out / "ablation.md").write_text(result.to_markdown() + "\n")
    result.plot(out / "ablation.png")
    print(f"wrote {out / 'ablation.csv'}, {out / 'ablation.md'} and {out / 'ablation.png'}")


def demo_command(args: argparse.Namespace) -> None:
    """``tokenkit demo``: train a small tokenizer on the bundled images, write a grid, print metrics."""
    from tokenkit.train.demo import run_demo

    print(f"training a small 1D tokenizer on the bundled images for {args.steps} steps (CPU) ...")
    metrics = run_demo(args.out, steps=args.steps, seed=args.seed)
    print(f"PSNR {metrics['psnr']:.2f} dB | SSIM {metrics['ssim']:.3f} | codebook usage {metrics['usage'] * 100:.1f}% "
          f"(perplexity {metrics['perplexity']:.0f}) | {metrics['seconds']:.0f} s")
    print(f"wrote {Path(args.out) / 'reconstructions.png'} (originals above, reconstructions below), "
          f"{Path(args.out) / 'metrics.json'} and the model in {Path(args.out) / 'model'}")


def train_command(args: argparse.Namespace) -> None:
    """``tokenkit train RECIPE [section.key=value ...]``."""
    from tokenkit.recipes import recipe_path
    from tokenkit.train.recipe import load_recipe, run_recipe

    recipe = load_recipe(recipe_path(args.recipe), args.overrides)
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

    Example:
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
    """``tokenkit pretokenize MODEL --out PATH``: images -> token ids for generator training."""
    from tokenkit.train.pretokenize import pretokenize

    if args.weights is None and args.model and Path(args.model).exists():  # a saved tokenizer folder or file
        tokenizer = tk.from_pretrained(args.model, device=args.device)
    else:
        tokenizer = _load(args.model, args.weights, args.device)
    if not hasattr(tokenizer, "tokenize"):
        raise tk.ConfigError(f"{args.model!r} is not a tokenizer (pretokenize needs one, e.g. titok-l32)")
    part = data_part(args.data, args.size or tokenizer.image_size)
    dataset = tk.build_part("dataset", part)
    info = pretokenize(tokenizer, dataset, args.out, batch_size=args.batch_size, flip=not args.no_flip,
                       num_workers=args.num_workers, device=args.device, allow_unlabelled=args.allow_unlabelled,
                       progress=True)
    print(f"wrote {info['path']}: {info['count']} token sequences of {info['num_tokens']} ids "
          f"(codebook {info['codebook_size']}, {part.name} data{', with flips' if not args.no_flip else ''}) "
          f"in {info['seconds']:.1f} s")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tokenkit`` console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tokenkit", description="Pluggable image-tokenizer building blocks.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="list reference models (or parts with --parts KIND)")
    p_list.add_argument("pattern", nargs="?", default="*", help="glob pattern, e.g. 'titok-b*'")
    p_list.add_argument("--parts", metavar="KIND", choices=tk.KINDS, help="list registered parts of this kind")
    p_info = sub.add_parser("info", help="composition, parameters, tokens and bits per image of a model")
    p_info.add_argument("name")
    p_info.add_argument("--json", action="store_true", help="print JSON")
    p_gen = sub.add_parser("generate", help="generate images of classes: generator + tokenizer -> PNG grid")
    p_gen.add_argument("generator", help="generator model name, e.g. maskgit-titok-l32 ('' with --generator-weights "
                                         "to take the composition from the weights)")
    p_gen.add_argument("tokenizer", help="tokenizer model name, e.g. titok-l32")
    p_gen.add_argument("--labels", default="1,7,282,604", help="comma-separated class ids (default: 1,7,282,604)")
    p_gen.add_argument("--generator-weights", metavar="SRC", help="file, folder or Hub id of the generator weights")
    p_gen.add_argument("--tokenizer-weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights")
    p_gen.add_argument("--steps", type=int, help="sampling steps (default: the generator's)")
    p_gen.add_argument("--guidance", type=float, help="guidance scale")
    p_gen.add_argument("--guidance-decay", choices=["constant", "linear", "power-cosine"])
    p_gen.add_argument("--temperature", type=float, help="Gumbel temperature")
    p_gen.add_argument("--schedule", choices=["arccos", "cosine", "linear"], help="mask schedule")
    p_gen.add_argument("--seed", type=int, default=0)
    p_gen.add_argument("--batch-size", type=int, default=8)
    p_gen.add_argument("--device", default="cpu")
    p_gen.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p_gen.add_argument("--out", default="samples.png", help="PNG grid to write (default: samples.png)")
    p_gen.add_argument("--nrow", type=int, help="images per grid row")
    p_gen.add_argument("--separate", metavar="DIR", help="also write one PNG per sample into DIR")
    p_abl = sub.add_parser("ablate", help="cost of a grid of compositions: --KNOB v1,v2 ... -> table and plot",
                           epilog="Every other option --KNOB v1,v2,... is an axis over a knob of BASE, e.g. "
                                  "--num-tokens 8,16,32 --quantizer vq,fsq --encoder-size small,base")
    p_abl.add_argument("base", help="tokenizer model name, e.g. titok-tiny")
    p_abl.add_argument("--out", default="ablation", help="folder for ablation.csv/.md/.png (default: ablation)")
    p_abl.add_argument("--batch", type=int, default=4, help="images per timed call")
    p_abl.add_argument("--repeats", type=int, default=2, help="timed calls per measurement")
    p_abl.add_argument("--device", default="cpu")
    p_abl.add_argument("--no-throughput", action="store_true", help="skip the timings (FLOPs only)")
    p_demo = sub.add_parser("demo", help="train a small tokenizer on the bundled images (CPU, offline), "
                                         "write a reconstruction grid and print PSNR/SSIM/codebook usage")
    p_demo.add_argument("--steps", type=int, default=2500)
    p_demo.add_argument("--seed", type=int, default=0)
    p_demo.add_argument("--out", default="tokenkit-demo", help="output folder (default: tokenkit-demo)")
    p_train = sub.add_parser("train", help="train with a recipe file (or a bundled recipe name)")
    p_train.add_argument("recipe", help="YAML/JSON recipe file, or a bundled recipe name (tiny-single-stage)")
    p_train.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.steps=200")
    p_train.add_argument("--restart", action="store_true", help="ignore existing checkpoints in output_dir")
    p_pre = sub.add_parser("pretokenize", help="tokenize an image dataset (and its flips) once, for generator "
                                               "training: -> .safetensors or official .jsonl")
    p_pre.add_argument("model", help="tokenizer model name, e.g. titok-l32, or a saved tokenizer folder/file "
                                     "(e.g. tokenkit-demo/model; '' with --weights does the same)")
    p_pre.add_argument("--out", required=True, help="output file: .safetensors, or .jsonl (the official format)")
    p_pre.add_argument("--weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights")
    p_pre.add_argument("--data", help="image folder (labels from sub-folders), .tar shard pattern, or a JSON part "
                                      "'{\"part\": NAME, \"config\": {...}}' (default: the bundled images)")
    p_pre.add_argument("--size", type=int, help="image side (default: the tokenizer's image size)")
    p_pre.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p_pre.add_argument("--no-flip", action="store_true", help="skip the horizontally flipped copies")
    p_pre.add_argument("--allow-unlabelled", action="store_true", help="accept images without a label (-1)")
    p_pre.add_argument("--device", default="cpu")
    p_pre.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "ablate":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "list":
            names = tk.list_parts(args.parts, args.pattern) if args.parts else tk.list_models(args.pattern)
            print("\n".join(names))
        elif args.command == "generate":
            generate_command(args)
        elif args.command == "ablate":
            ablate_command(args, extra)
        elif args.command == "demo":
            demo_command(args)
        elif args.command == "train":
            train_command(args)
        elif args.command == "pretokenize":
            pretokenize_command(args)
        else:
            info = model_info(args.name)
            print(json.dumps(info, indent=2)) if args.json else _print_info(info)
    except TokenkitError as err:
        print(f"tokenkit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
