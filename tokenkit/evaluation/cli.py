"""``tokenkit eval``: ``reconstruct``, ``generate``, ``reference``, ``rate-distortion`` and ``weights`` (their options
are in ``tokenkit.cli``, which imports this module only when ``eval`` runs)."""

from __future__ import annotations

import argparse
import json
import sys


def compare_weights(first: str, second: str) -> float:
    """Print whether two Inception weight files give the same features; returns the largest pool difference."""
    import torch

    from tokenkit.data import sample_images
    from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID

    nets = [InceptionV3FID(InceptionConfig(weights=path)) for path in (first, second)]
    same = nets[0].weights_info.features_sha256 == nets[1].weights_info.features_sha256
    images = (sample_images(256, seed=0) * 255).round().to(torch.uint8)
    with torch.no_grad():
        a, b = (net(images) for net in nets)
    worst = float((a.pool - b.pool).abs().max())
    print(f"features sha256: {nets[0].weights_info.features_sha256[:16]}... vs "
          f"{nets[1].weights_info.features_sha256[:16]}... ({'identical tensors' if same else 'different tensors'})")
    print(f"largest |pool difference| on the {_plural(len(images), 'bundled image')}: {worst:.3g} "
          f"(pool features are of order 1; below 1e-4 the FIDs agree to about 1e-6)")
    return worst


def rate_distortion_command(args: argparse.Namespace) -> None:
    """``tokenkit eval rate-distortion``: table, CSV, JSON and PNG of quality against bits per image."""
    from tokenkit.errors import ConfigError
    from tokenkit.evaluation.rate_distortion import rate_distortion

    labelled = ["=" in m and not m.startswith("=") for m in args.models]
    if any(labelled):
        models = dict(m.split("=", 1) if "=" in m else (m, m) for m in args.models)
    else:
        models = args.models[0] if len(args.models) == 1 else list(args.models)
    if args.weights and (len(args.models) != 1 or any(labelled)):
        raise ConfigError("--weights applies to a single MODEL given by name; use LABEL=SRC for several models")
    try:
        counts = None if args.num_tokens is None else [int(v) for v in args.num_tokens.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--num-tokens must be comma-separated integers, got {args.num_tokens!r}") from None
    result = rate_distortion(models, _data(args.data), num_tokens=counts, protocol=args.protocol,
                             metrics=args.metrics, weights=args.weights, reference=args.ref_stats,
                             num_images=args.num_images, batch_size=args.batch_size,
                             inception_weights=args.inception_weights, device=args.device, precision=args.precision,
                             num_workers=args.num_workers, progress=not args.no_progress)
    print(result.to_markdown())
    paths = result.save(args.out)
    print("wrote " + ", ".join(str(p) for p in paths))


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _data(items: list[str]):
    return items[0] if len(items) == 1 else items


def _report(result, out: str) -> None:
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    print(result.to_markdown())
    json_path, md_path = result.save(out)
    print(f"wrote {json_path} and {md_path}")


def _warn_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"tokenkit: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> None:
    """Run the ``tokenkit eval`` subcommand in ``args`` (Python warnings print as one line each)."""
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = _warn_line
        _run(args)


def _run(args: argparse.Namespace) -> None:
    if args.eval_command == "weights":
        from tokenkit.evaluation.inception_weights import find_inception_weights

        found = find_inception_weights()
        print(json.dumps({"source": found.source, "path": found.path, "file_sha256": found.file_sha256,
                          "features_sha256": found.features_sha256, "has_logits": found.has_logits}, indent=2))
        if not found.has_logits:
            print("(no classifier weights: FID / KID / precision / recall / sFID work, the Inception Score does not)")
        if args.compare:
            compare_weights(found.path, args.compare)
        return
    if args.eval_command == "reference":
        from tokenkit.evaluation.reference import save_reference
        from tokenkit.evaluation.runner import reference_statistics

        ref = reference_statistics(_data(args.data), protocol=args.protocol, size=args.size,
                                   batch_size=args.batch_size, features=not args.no_features,
                                   inception_weights=args.inception_weights, num_images=args.num_images,
                                   device=args.device, num_workers=args.num_workers)
        path = save_reference(ref, args.out)
        print(f"wrote {path}: {_plural(ref.count, 'image')}, protocol {args.protocol}, features "
              f"{ref.info['features_sha256'][:16]}...")
        return
    if args.eval_command == "rate-distortion":
        rate_distortion_command(args)
        return
    from tokenkit.evaluation.runner import evaluate_generation, evaluate_reconstruction

    common = dict(protocol=args.protocol, metrics=args.metrics, batch_size=args.batch_size,
                  inception_weights=args.inception_weights, device=args.device, precision=args.precision,
                  state_dir=args.state_dir, progress=not args.no_progress)
    if args.eval_command == "reconstruct":
        model = "" if args.weights and not args.model else args.model
        result = evaluate_reconstruction(model, _data(args.data), weights=args.weights, reference=args.ref_stats,
                                         num_images=args.num_images, num_tokens=args.num_tokens,
                                         num_workers=args.num_workers, **common)
    else:
        sampling = {k: getattr(args, k) for k in ("steps", "guidance", "temperature") if getattr(args, k) is not None}
        num_images = args.num_images
        if args.num is not None:  # the deprecated spelling
            print("tokenkit: warning: --num is deprecated; use --num-images", file=sys.stderr)
            num_images = args.num
        result = evaluate_generation(args.generator, args.tokenizer, num_images=num_images, reference=args.ref,
                                     npz=args.npz, seed=args.seed, generator_weights=args.generator_weights,
                                     tokenizer_weights=args.tokenizer_weights, **common, **sampling)
    _report(result, args.out)
    sys.stdout.flush()
