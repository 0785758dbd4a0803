"""Peak memory of ``tokenize`` / ``detokenize`` over many images with ``batch_size=``, against one chunk.

Every measurement runs in a fresh Python process (so no allocator cache of an
earlier measurement hides or adds memory): build the model (random weights), make
the inputs, run one untimed chunk (oneDNN and allocator set-up), then reset the
process's peak resident set size (``/proc/self/clear_refs``, Linux), call the
method once and read ``VmHWM``. The *working memory* of a call is that peak minus
the resident set size before the call, minus the bytes of the result (which the
caller keeps, whatever the chunking). The report compares the working memory of
``N`` images in chunks of ``B`` with that of one call on ``B`` images.

Usage (from the repository root, tokenkit installed)::

    python benchmarks/chunked_memory.py                                # titok-s128, 1000 images, chunks of 32
    python benchmarks/chunked_memory.py --model titok-tiny --knobs image_size=128 --workloads detokenize
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or ".") == HERE:
    sys.path.pop(0)  # this folder holds a tokenizers.py that would shadow the HF package of that name


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def parse_knobs(text: str) -> dict:
    """``"image_size=128,num_tokens=16"`` -> ``{"image_size": 128, "num_tokens": 16}`` (numbers where they parse)."""
    knobs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--knobs takes KEY=VALUE pairs, got {item!r}")
        try:
            knobs[key] = int(value)
        except ValueError:
            knobs[key] = value
    return knobs


def child(model: str, knobs: str, workload: str, images: int, batch_size: int | None, threads: int | None) -> dict:
    """One measurement, in this process: see the module docstring."""
    import torch

    import tokenkit as tk

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    tok = tk.build(model, **parse_knobs(knobs)).eval()
    size = tok.image_size
    generator = torch.Generator().manual_seed(0)
    if workload == "tokenize":
        inputs = torch.rand(images, 3, size, size, generator=generator)
        call = tok.tokenize
    else:
        inputs = torch.randint(0, tok.codebook_size, (images, tok.num_tokens), generator=generator)
        call = tok.detokenize
    call(inputs[: batch_size or images], batch_size=batch_size)  # set-up on one chunk, untimed
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS") * 1024
    start = time.perf_counter()  # a hand clock: one call, the one whose peak memory is read
    result = call(inputs, batch_size=batch_size)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") * 1024
    result_bytes = result.numel() * result.element_size()
    return {"model": model, "knobs": knobs, "workload": workload, "images": images, "batch_size": batch_size,
            "threads": torch.get_num_threads(), "seconds": seconds, "input_mib": inputs.numel() * inputs.element_size() / 2**20,
            "result_mib": result_bytes / 2**20, "peak_over_before_mib": (peak - before) / 2**20,
            "working_mib": (peak - before - result_bytes) / 2**20}


def run_child(*args: str, system_malloc: bool = False) -> dict:
    env = dict(os.environ) if system_malloc else {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *args], capture_output=True,
                          text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"measurement {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="titok-s128", help="tokenizer name (default titok-s128)")
    parser.add_argument("--knobs", default="", help="knobs of the model, e.g. image_size=128,num_tokens=16")
    parser.add_argument("--images", type=int, default=1000, help="images of the large call (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, help="chunk size (default 32)")
    parser.add_argument("--workloads", default="tokenize,detokenize", help="tokenize, detokenize or both")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--system-malloc", action="store_true",
                        help="keep glibc's default mmap threshold (freed heap memory then counts as used)")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model, knobs, workload, images, batch, threads = args.child
        print(json.dumps(child(model, knobs, workload, int(images), None if batch == "none" else int(batch),
                               int(threads) or None)))
        return
    if not os.path.exists("/proc/self/clear_refs"):
        raise SystemExit("chunked_memory.py reads the peak resident set size through /proc (Linux only)")
    rows = []
    for workload in [w.strip() for w in args.workloads.split(",") if w.strip()]:
        if workload not in ("tokenize", "detokenize"):
            raise SystemExit(f"unknown workload {workload!r}: tokenize or detokenize")
        parse_knobs(args.knobs)
        common = (args.model, args.knobs, workload)
        chunk = run_child(*common, str(args.batch_size), "none", str(args.threads or 0),
                          system_malloc=args.system_malloc)
        many = run_child(*common, str(args.images), str(args.batch_size), str(args.threads or 0),
                         system_malloc=args.system_malloc)
        rows.append((chunk, many))
    print(f"# benchmarks/chunked_memory.py: {args.model} {args.knobs}, {args.images} images in chunks of {args.batch_size}\n")
    print("working memory = peak RSS during the call - RSS before it - bytes of the result; "
          + ("glibc malloc defaults" if args.system_malloc else "MALLOC_MMAP_THRESHOLD_=65536") + "\n")
    print("| workload | images | batch_size | s | input MiB | result MiB | working MiB | vs one chunk |")
    print("|---|---|---|---|---|---|---|---|")
    for chunk, many in rows:
        for r in (chunk, many):
            ratio = r["working_mib"] / chunk["working_mib"] if chunk["working_mib"] > 0 else float("nan")
            print(f"| {r['workload']} | {r['images']} | {r['batch_size'] or 'one call'} | {r['seconds']:.1f} | "
                  f"{r['input_mib']:.1f} | {r['result_mib']:.1f} | {r['working_mib']:.1f} | {ratio:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump([r for pair in rows for r in pair], f, indent=2)


if __name__ == "__main__":
    main()
