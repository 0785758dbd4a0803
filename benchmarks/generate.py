"""Benchmark a generator's sampling: per-step time and samples/s, fp32 vs the automatic precision.

    python benchmarks/generate.py                                  # maskgit-titok-l32, batch 4, 8 steps
    python benchmarks/generate.py --model maskgit-tiny --batch 16 --steps 8 --repeats 5
    python benchmarks/generate.py --weights generator_titok_l32.bin  # official or tokenkit weights
    python benchmarks/generate.py --precision bf16                 # compare fp32 with bf16 even where it is emulated

It prints the precision that ``auto`` picks here and why (CPU name, torch's CPU
capability, native bf16 or not; see ``tokenkit.precision``), then, for fp32 and
for that precision, the median time of one ``generate`` call (after a warm-up),
the time per step and the samples per second, then the fraction of token ids
on which the two agree at sampling temperature 0 (deterministic decoding).
Where ``auto`` is fp32 (no native bf16) it says so and times fp32 only.

Random weights are a degenerate regime for that agreement: their logits are
nearly flat, so the confidence ranking that decides which tokens are kept is
decided by differences far below bf16's precision and one flip changes every
later step. Trained generators are confident. ``--fit-steps N`` then fits the
random generator's output layer for N steps to one fixed token sequence per
label (peaked predictions, as a trained model's), and the agreement is
reported for that model too (about a minute for maskgit-titok-l32 at 100 steps). This is a benchmark (it prints numbers), not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import tokenkit as tk
from tokenkit.generators.sampling import mask_tokens, masked_token_loss
from tokenkit.precision import PRECISIONS, describe, resolve_precision
from tokenkit.precision import autocast as precision_autocast


def autocast(dtype: str):
    """The autocast context of a resolved precision on the CPU (nothing for fp32)."""
    return precision_autocast(dtype, "cpu")


def time_generate(gen, labels, dtype: str, repeats: int, **sampling) -> tuple[float, torch.Tensor]:
    """Median wall time of ``generate`` (one untimed warm-up) and the ids of the last call."""
    # Not torch.utils.benchmark.Timer: timeit(N) gives one mean of N calls (not a median) and no ids to compare.
    times = []
    with autocast(dtype):
        ids = gen.generate(labels, generator=torch.Generator().manual_seed(0), **sampling)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            ids = gen.generate(labels, generator=torch.Generator().manual_seed(0), **sampling)
            times.append(time.perf_counter() - start)
    return statistics.median(times), ids


def agreement(gen, labels, dtype: str, **sampling) -> float:
    """Fraction of ids equal between fp32 and ``dtype`` autocast at temperature 0."""
    _, a = time_generate(gen, labels, "fp32", 1, temperature=0.0, **sampling)
    _, b = time_generate(gen, labels, dtype, 1, temperature=0.0, **sampling)
    return (a == b).float().mean().item()


def fit(gen, labels: torch.Tensor, steps: int, lr: float, batch: int = 16, dtype: str = "fp32") -> float:
    """Fit ``gen``'s ``lm_head`` to one fixed random token sequence per label. Returns the last loss.

    Only the output layer is trained (a linear read-out of the frozen random
    features, computed in ``dtype``), which is cheap and enough to make the
    predictions confident, as a trained generator's are.
    """
    g = torch.Generator().manual_seed(1)
    targets = torch.randint(0, gen.codebook_size, (labels.shape[0], gen.num_tokens), generator=g)
    optimizer = torch.optim.AdamW(gen.lm_head.parameters(), lr=lr, weight_decay=0.0)
    gen.eval()
    loss = torch.zeros(())
    for _ in range(steps):
        pick = torch.randint(0, labels.shape[0], (batch,), generator=g)
        masked, mask = mask_tokens(targets[pick], gen.mask_id, generator=g)
        with torch.no_grad(), autocast(dtype):
            tokens = torch.cat([labels[pick][:, None] + gen.codebook_size + 1, masked], dim=1)
            hidden = gen.norm(gen.backbone(gen.token_embedding(tokens) + gen.position_embedding))
        loss = masked_token_loss(gen.lm_head(hidden[:, 1:].float()), targets[pick], mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="maskgit-titok-l32")
    parser.add_argument("--weights", help="weights to load (file, folder or Hub id); default: random")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--fit-steps", type=int, default=0, help="fit the generator first (see the module docs)")
    parser.add_argument("--fit-lr", type=float, default=1e-2, help="learning rate of the fit")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="what to compare with fp32 (default: auto, the precision tokenkit picks here)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = tk.build(args.model, pretrained=args.weights)
    labels = torch.tensor([1, 7, 282, 604, 88, 130, 207, 980][: args.batch] + list(range(max(0, args.batch - 8))))
    labels = labels % gen.num_classes
    sampling = dict(steps=args.steps)
    if args.guidance is not None:
        sampling["guidance"] = args.guidance
    s = gen.config.sampling
    print(f"{args.model}: batch {args.batch}, {args.steps} steps, guidance {sampling.get('guidance', s.guidance)} "
          f"({s.guidance_decay}), temperature {s.temperature}, {args.threads} threads, torch {torch.__version__}")
    other = resolve_precision(args.precision, "cpu")
    print(f"  {describe(args.precision, 'cpu')}")
    if other == "fp32":
        print("  auto = fp32 here (no native bf16): only fp32 is timed; --precision bf16 times emulated bf16 too"
              if args.precision == "auto" else "  fp32 asked for: only fp32 is timed")
    results = {}
    for dtype in dict.fromkeys(("fp32", other)):
        seconds, _ = time_generate(gen, labels, dtype, args.repeats, **sampling)
        results[dtype] = seconds
        print(f"  {dtype}: {seconds:.3f} s per generate, {seconds / args.steps * 1e3:.1f} ms per step, "
              f"{args.batch / seconds:.2f} samples/s")
    if other == "fp32":
        return
    print(f"  {other} speed-up over fp32: {results['fp32'] / results[other]:.2f}x")
    print(f"  temperature-0 agreement {other} vs fp32 ({'given' if args.weights else 'random'} weights): "
          f"{agreement(gen, labels, other, **sampling) * 100:.1f}%")
    if args.fit_steps:
        loss = fit(gen, labels, args.fit_steps, args.fit_lr, dtype=other)
        print(f"  after fitting {args.fit_steps} steps (loss {loss:.3f}): temperature-0 agreement {other} vs fp32 "
              f"{agreement(gen, labels, other, **sampling) * 100:.1f}%")


if __name__ == "__main__":
    main()
