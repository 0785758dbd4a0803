"""The ``tokenkit`` command line: ``tokenkit list [PATTERN]`` and ``tokenkit info NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

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
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            names = tk.list_parts(args.parts, args.pattern) if args.parts else tk.list_models(args.pattern)
            print("\n".join(names))
        else:
            info = model_info(args.name)
            print(json.dumps(info, indent=2)) if args.json else _print_info(info)
    except TokenkitError as err:
        print(f"tokenkit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
