"""What ``tok.compile()`` (opt-in ``torch.compile``) buys: compile time, speed-up, and the change in the outputs.

For each model and workload (``tokenize``, ``detokenize``): the eager model is
timed (warm-up, then the median of ``--repeats`` calls); then the same model is
compiled (``Tokenizer.compile``, keyword options from ``--mode`` /
``--backend``), its first call is timed as the *compile call* (compiling plus
one run), and its later calls as above. The report gives both medians, the
speed-up, the compile call's seconds, the share of equal token ids and the
largest image difference against eager. Random weights; inputs ``torch.rand``.

Usage (from the repository root, tokenkit installed; inductor needs a C++ compiler)::

    python benchmarks/compile.py                                  # titok-s128 and titok-l32, batch 4
    python benchmarks/compile.py --models titok-b64 --batch 1 --mode max-autotune
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == HERE:
    sys.path.pop(0)  # this folder holds a tokenizers.py that would shadow the HF package of that name

import torch  # noqa: E402

import tokenkit as tk  # noqa: E402
from tokenkit.ablation import time_calls  # noqa: E402
from tokenkit.precision import describe  # noqa: E402


def measure(name: str, batch: int, repeats: int, options: dict) -> list[dict]:
    """Eager against compiled, for tokenize and detokenize of one model."""
    torch.manual_seed(0)
    tok = tk.build(name).eval()
    images = torch.rand(batch, 3, tok.image_size, tok.image_size, generator=torch.Generator().manual_seed(0))
    ids = tok.tokenize(images)
    calls = {"tokenize": lambda: tok.tokenize(images), "detokenize": lambda: tok.detokenize(ids)}
    # tokenkit's time_calls, not Timer.timeit: the spread columns need each call's time, not one mean
    eager = {w: time_calls(fn, warmup=1, repeats=repeats) for w, fn in calls.items()}
    reference = {"tokenize": ids, "detokenize": tok.detokenize(ids)}
    tok.compile(**options)
    rows = []
    for workload, fn in calls.items():
        start = time.perf_counter()  # a hand clock: the first compiled call runs once and its output is checked
        first = fn()
        compile_call = time.perf_counter() - start
        timing = time_calls(fn, warmup=1, repeats=repeats)
        if workload == "tokenize":
            agreement = f"{(first == reference['tokenize']).float().mean().item() * 100:.1f}% ids equal"
        else:
            agreement = f"max abs diff {(first - reference['detokenize']).abs().max().item():.1e}"
        rows.append(dict(model=name, workload=workload, batch=batch, eager=eager[workload].median,
                         eager_spread=eager[workload].spread, compiled=timing.median, spread=timing.spread,
                         compile_call=compile_call, agreement=agreement))
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="titok-s128,titok-l32", help="tokenizer names, comma separated")
    parser.add_argument("--batch", type=int, default=4, help="images per call (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement (default 3)")
    parser.add_argument("--mode", help="torch.compile mode (default: torch's)")
    parser.add_argument("--backend", help="torch.compile backend (default: inductor)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    options = {k: v for k, v in (("mode", args.mode), ("backend", args.backend)) if v}
    print(f"# benchmarks/compile.py: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.machine()}, fp32; {describe('auto', 'cpu')}; torch.compile options {options or 'default'}\n")
    print("| model | workload | batch | eager s | spread | compiled s | spread | speed-up | compile call s | agreement |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in [m for m in args.models.split(",") if m]:
        for r in measure(name, args.batch, args.repeats, options):
            print(f"| {r['model']} | {r['workload']} | {r['batch']} | {r['eager']:.3f} | {r['eager_spread']:.0%} | "
                  f"{r['compiled']:.3f} | {r['spread']:.0%} | {r['eager'] / r['compiled']:.2f}x | "
                  f"{r['compile_call']:.1f} | {r['agreement']} |", flush=True)


if __name__ == "__main__":
    main()
