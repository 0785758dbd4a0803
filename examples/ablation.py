"""The TiTok paper's token-count x model-size grid (32/64/128 tokens x S/B/L) as a table and a plot.

    python examples/ablation.py                    # FLOPs + CPU throughput (a few minutes)
    python examples/ablation.py --no-throughput    # FLOPs only (seconds)

Every cell is the same composition (the two-stage TiTok of ``titok-b64``) with
other knob values: ``num_tokens`` and the encoder/decoder size. The weights
are random; the grid measures cost (parameters, bits, FLOPs, images/s), the
paper's reconstruction quality needs trained models.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tokenkit as tk

SIZES = {size[0].upper(): {"encoder_size": size, "decoder_size": size} for size in ("small", "base", "large")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="ablation-titok", help="output folder")
    parser.add_argument("--no-throughput", action="store_true", help="FLOPs only")
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    result = tk.ablate("titok-b64", num_tokens=[32, 64, 128], size=SIZES, throughput=not args.no_throughput,
                       batch=args.batch, repeats=1, progress=True)
    print(result.to_markdown())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "ablation.csv")
    result.plot(out / "ablation.png")
    print(f"wrote {out / 'ablation.csv'} and {out / 'ablation.png'}")


if __name__ == "__main__":
    main()
