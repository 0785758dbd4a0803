"""The TiTok paper's token-count x model-size grid (32/64/128 tokens x S/B/L) as a table and a plot.

    python examples/ablation.py                    # FLOPs + CPU throughput (a few minutes)
    python examples/ablation.py --no-throughput    # FLOPs only (seconds)
    python examples/ablation.py --no-throughput --resolutions 256,512   # x 256 and 512 px (the paper's 512 models)
    python examples/ablation.py --no-throughput --eval-data imagenet-val/ --official --num-images 5000

Every cell is the same composition (the two-stage TiTok of ``titok-b64``) with
other knob values: ``num_tokens`` and the encoder/decoder size, and with
``--resolutions 256,512`` the image side too (at 512 px the grid holds the
paper's TiTok-L-64 and TiTok-B-128, ``titok-l64-512`` and ``titok-b128-512``;
a 512 px model has 4x the patches, so about 4x the encoder and decoder FLOPs
for the same tokens). Without
``--eval-data`` the grid measures cost only (parameters, bits, FLOPs,
images/s). With ``--eval-data`` (real images) the cells that have weights get
quality columns (PSNR and rFID, from ``evaluate_reconstruction``):
``--official`` gives the three released cells (L-32, B-64, S-128, whose
compositions are exactly ``titok-l32``, ``titok-b64`` and ``titok-s128``) the
official weights from the Hugging Face Hub, ``--weights "32, L=runs/l32/model"``
any other; cells without weights are skipped (``--evaluate-random`` evaluates
them too, with random weights, marked ``random``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tokenkit as tk

SIZES = {size[0].upper(): {"encoder_size": size, "decoder_size": size} for size in ("small", "base", "large")}
OFFICIAL = {"32, L": "yucornetto/tokenizer_titok_l32_imagenet", "64, B": "yucornetto/tokenizer_titok_b64_imagenet",
            "128, S": "yucornetto/tokenizer_titok_s128_imagenet"}
"""Weights of the released cells, by the values of their setting (num_tokens, size)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ablation-titok", help="output folder")
    parser.add_argument("--no-throughput", action="store_true", help="FLOPs only")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--resolutions", default="256", help="image sides, e.g. 256,512 (an axis when several)")
    parser.add_argument("--eval-data", help="real images (folder, .tar shards, .npz) for the quality columns")
    parser.add_argument("--official", action="store_true", help="official weights for L-32, B-64 and S-128")
    parser.add_argument("--weights", action="append", default=[], metavar="'TOKENS, SIZE=SRC'",
                        help="weights of one cell, e.g. '32, L=runs/l32/model' (repeatable)")
    parser.add_argument("--metrics", default=None, help="evaluation metrics (default psnr,fid)")
    parser.add_argument("--num-images", type=int, help="evaluate on the first N images only")
    parser.add_argument("--evaluate-random", action="store_true", help="also evaluate cells without weights")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if (args.official or args.weights) and not args.eval_data:
        parser.error("--official / --weights need --eval-data (the images to evaluate the weights on)")
    weights = dict(OFFICIAL) if args.official else {}
    for item in args.weights:
        label, sep, source = item.rpartition("=")
        if not sep:
            parser.error(f"--weights takes 'TOKENS, SIZE=SRC', got {item!r}")
        weights[label.strip()] = source
    sides = [int(v) for v in args.resolutions.split(",") if v.strip()]
    axes = {} if sides == [256] else {"image_size": sides}
    result = tk.ablate("titok-b64", num_tokens=[32, 64, 128], size=SIZES, **axes, throughput=not args.no_throughput,
                       batch=args.batch, progress=True, device=args.device, eval_data=args.eval_data,
                       weights=weights or None, eval_metrics=args.metrics, num_images=args.num_images,
                       evaluate_random=args.evaluate_random)
    print(result.to_markdown())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "ablation.csv")
    result.plot(out / "ablation.png")
    print(f"wrote {out / 'ablation.csv'} and {out / 'ablation.png'}")


if __name__ == "__main__":
    main()
