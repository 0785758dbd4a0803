"""Benchmark the FID Inception feature extraction: images/s and memory, per protocol precision.

    python benchmarks/eval.py                          # fp32 (adm / clean presets), batch 50, 3 timed batches
    python benchmarks/eval.py --dtype float64          # the titok preset's float64 arithmetic
    python benchmarks/eval.py --device cuda --batch 200

It builds the ``inception-v3-fid`` feature part with the weights found here
(``tokenkit eval weights`` says which), feeds random uint8 images of 256x256
(resized to 299 inside, as in every preset but ``clean``), and prints the median
time of one batch after a warm-up, images per second, and the peak memory
(resident set size of the process on CPU, ``torch.cuda.max_memory_allocated``
on CUDA). It also prints which CPU capabilities torch sees, since the figure
depends on them. This is a benchmark (it prints numbers), not a test.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch

from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3, help="timed batches (after one warm-up)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=256, help="input side before the resize to 299")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--weights", help="Inception weights file (default: looked up)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net = InceptionV3FID(InceptionConfig(weights=args.weights, dtype=args.dtype)).to(device)
    info = net.weights_info
    print(f"weights: {info.source} {info.path} (features sha256 {info.features_sha256[:16]}...)")
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads, device {device}")
    images = torch.randint(0, 256, (args.batch, 3, args.size, args.size), dtype=torch.uint8, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    # Not torch.utils.benchmark.Timer: its timeit(N) reports one mean of N calls, and the median of exactly
    # --repeats calls (steady on a shared machine) is what this prints.
    def one() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            net(images)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    one()  # warm-up
    times = [one() for _ in range(args.repeats)]
    median = statistics.median(times)
    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB CUDA peak"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:,.0f} MiB peak RSS"
    print(f"{args.dtype}, batch {args.batch}: {median:.2f} s/batch (median of {args.repeats}), "
          f"{args.batch / median:.1f} images/s, {memory}")


if __name__ == "__main__":
    main()
