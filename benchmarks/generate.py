"""Benchmark a generator's sampling: per-step time and samples/s, fp32 vs the automatic precision.

    python benchmarks/generate.py                                  # maskgit-titok-l32, batch 4, 8 steps
    python benchmarks/generate.py --model maskgit-tiny --batch 16 --steps 8 --repeats 5
    python benchmarks/generate.py --weights generator_titok_l32.bin  # official or tokenkit weights
    python benchmarks/generate.py --precision bf16                 # compare fp32 with bf16 even where it is emulated
    python benchmarks/generate.py --model rar-b --batch 1,8        # autoregressive: KV cache against recomputing
    python benchmarks/generate.py --model maskgen-vq-tiny --batch 4 --steps 8   # text to image (tiny, offline)
    python benchmarks/generate.py --model rar-b --knobs width=256,depth=4,heads=4,mlp_dim=1024 --batch 1,8 \
        --repeats 1 --threads 1                                    # a CPU-sized RAR (about 6 minutes on 2 cores)

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
reported for that model too (about a minute for maskgit-titok-l32 at 100 steps).

Text-to-image generators (MaskGen, ``maskgen-*``) are timed like the masked ones on the embeddings of a
few fixed prompts (embedded once, not timed); for MaskGen-KL's continuous tokens the agreement is the
largest difference of the codes. Their text encoder is the released CLIP (downloaded once) unless
``--knobs`` gives another.

Autoregressive generators (RAR, ``rar-*``: one token per step, ``--steps`` does
not apply) are timed per batch size and precision twice: with the KV cache and
recomputing the whole prefix at every step (``kv_cache=False``). Each row gives
the median time of one ``generate`` of all ``N`` tokens for both, the tokens
per second (batch x N / time) and the speed-up of the cache. Guidance is on
unless ``--guidance 0``: the conditional and unconditional sequences run as one
batch of 2 x batch, as the official sampler does. Without the cache, step ``t``
runs ``t + 2`` positions, so a generate costs about N / 2 times the
positions of a cached one; ``--knobs`` shrinks the model (e.g.
``width=256,depth=4,heads=4,mlp_dim=1024``) for a CPU. This is a benchmark
(it prints numbers), not a test.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import tokenkit as tk
from tokenkit.generators import ARGenerator
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


def parse_batches(text: str) -> list[int]:
    """``"1,8"`` -> ``[1, 8]``; ``"4"`` -> ``[4]``."""
    error = argparse.ArgumentTypeError(f"expected a positive int or a comma list of them (1,8), got {text!r}")
    try:
        batches = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise error from None
    if not batches or min(batches) < 1:
        raise error
    return batches


def parse_knobs(text: str) -> dict:
    """``"width=256,depth=4,guidance=2.5"`` -> ``{"width": 256, "depth": 4, "guidance": 2.5}`` (numbers and
    true / false where they parse, else strings)."""
    knobs = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE pairs separated by commas, got {item!r}")
        for convert in (int, float, {"true": True, "false": False}.__getitem__):
            try:
                knobs[key] = convert(value)
                break
            except (ValueError, KeyError):
                pass
        else:
            knobs[key] = value
    return knobs


PROMPTS = ["A cozy cabin in the middle of a snowy forest, northern lights in the sky.",
           "A photo of a cup of coffee on a wooden table.", "A red rocket lifting off at dawn.",
           "An astronaut floating above the earth."]


def make_labels(gen, batch: int):
    """The benchmark's class labels for ``batch`` samples, or, for a text generator (MaskGen), the text
    embeddings of ``batch`` prompts (embedded once, outside the timings)."""
    if getattr(gen, "conditioning", "class") == "text":
        return gen.encode_text([PROMPTS[i % len(PROMPTS)] for i in range(batch)])
    labels = torch.tensor([1, 7, 282, 604, 88, 130, 207, 980][:batch] + list(range(max(0, batch - 8))))
    return labels % gen.num_classes


def is_autoregressive(gen) -> bool:
    """One token per step (RAR), rather than masked steps (MaskGIT)."""
    return isinstance(gen, ARGenerator) or not hasattr(gen.config.sampling, "steps")


def agreement(gen, labels, dtype: str, **sampling) -> float:
    """Fraction of ids equal between fp32 and ``dtype`` autocast at temperature 0 (continuous tokens: the
    largest difference of the codes, relative to their largest magnitude, from the same noise)."""
    _, a = time_generate(gen, labels, "fp32", 1, temperature=0.0, **sampling)
    _, b = time_generate(gen, labels, dtype, 1, temperature=0.0, **sampling)
    if a.is_floating_point():
        return ((a - b).abs().max() / a.abs().max().clamp(min=1e-12)).item()
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


def bench_masked(gen, args, batch: int) -> None:
    """A masked generator at one batch size: fp32 and the other precision, then their agreement."""
    labels = make_labels(gen, batch)
    sampling = {"steps": args.steps}
    if args.guidance is not None:
        sampling["guidance"] = args.guidance
    s = gen.config.sampling
    decay = getattr(s, "guidance_decay", getattr(s, "guidance_schedule", ""))
    print(f"{args.model}: batch {batch}, {args.steps} steps, guidance {sampling.get('guidance', s.guidance)} "
          f"({decay}), temperature {s.temperature}, {args.threads} threads, torch {torch.__version__}")
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
              f"{batch / seconds:.2f} samples/s")
    if other == "fp32":
        return
    print(f"  {other} speed-up over fp32: {results['fp32'] / results[other]:.2f}x")
    weights = "given" if args.weights else "random"
    if gen.codebook_size is None:
        print(f"  temperature-0 codes {other} vs fp32 ({weights} weights): largest difference "
              f"{agreement(gen, labels, other, **sampling):.2e} of the largest value")
        return
    print(f"  temperature-0 agreement {other} vs fp32 ({weights} weights): "
          f"{agreement(gen, labels, other, **sampling) * 100:.1f}%")
    if args.fit_steps and getattr(gen, "conditioning", "class") == "text":
        print("  --fit-steps fits a class-conditional MaskGIT's head only; skipped for a text generator")
    elif args.fit_steps:
        loss = fit(gen, labels, args.fit_steps, args.fit_lr, dtype=other)
        print(f"  after fitting {args.fit_steps} steps (loss {loss:.3f}): temperature-0 agreement {other} vs fp32 "
              f"{agreement(gen, labels, other, **sampling) * 100:.1f}%")


def bench_autoregressive(gen, args) -> None:
    """An autoregressive generator: per batch size and precision, ``generate`` with and without the KV cache."""
    sampling = {}
    if args.guidance is not None:
        sampling["guidance"] = args.guidance
    s = gen.config.sampling
    n = gen.num_tokens
    guidance = sampling.get("guidance", s.guidance)
    knobs = f" ({','.join(f'{k}={v}' for k, v in args.knobs.items())})" if args.knobs else ""
    params = sum(p.numel() for p in gen.parameters()) / 1e6
    print(f"{args.model}{knobs}: {params:.1f}M parameters, {n} tokens, batch {','.join(map(str, args.batch))}, "
          f"guidance {guidance} ({s.guidance_decay}, pow {s.guidance_pow}"
          f"{'; cond + uncond in one batch' if guidance else '; no unconditional pass'}), "
          f"temperature {s.temperature}, {args.threads} threads, torch {torch.__version__}")
    other = resolve_precision(args.precision, "cpu")
    print(f"  {describe(args.precision, 'cpu')}")
    if other == "fp32":
        print("  auto = fp32 here (no native bf16): only fp32 is timed; --precision bf16 times emulated bf16 too"
              if args.precision == "auto" else "  fp32 asked for: only fp32 is timed")
    if args.steps_given:
        print("  --steps does not apply: an autoregressive generator takes one step per token")
    print(f"  median of {args.repeats} generate call(s) after one warm-up, each of all {n} tokens\n")
    print("| batch | precision | KV cache s | ms/token | tokens/s "
          "| recompute s | ms/token | tokens/s | cache speed-up |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    speedups = []
    for batch in args.batch:
        labels = make_labels(gen, batch)
        for dtype in dict.fromkeys(("fp32", other)):
            cached, _ = time_generate(gen, labels, dtype, args.repeats, kv_cache=True, **sampling)
            recomputed, _ = time_generate(gen, labels, dtype, args.repeats, kv_cache=False, **sampling)
            speedups.append(recomputed / cached)
            print(f"| {batch} | {dtype} | {cached:.3f} | {cached / n * 1e3:.2f} | {batch * n / cached:.0f} "
                  f"| {recomputed:.3f} | {recomputed / n * 1e3:.2f} | {batch * n / recomputed:.0f} "
                  f"| {recomputed / cached:.1f}x |", flush=True)
    print(f"\n  smallest cache speed-up: {min(speedups):.1f}x ({n} tokens)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="maskgit-titok-l32")
    parser.add_argument("--knobs", default="", type=parse_knobs,
                        help="knobs of the model, e.g. width=256,depth=4,heads=4,mlp_dim=1024 (a smaller RAR)")
    parser.add_argument("--weights", help="weights to load (file, folder or Hub id); default: random")
    parser.add_argument("--batch", type=parse_batches, default=[4], help="batch size, or a comma list (1,8)")
    parser.add_argument("--steps", type=int, help="steps of a masked generator (default 8)")
    parser.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--fit-steps", type=int, default=0, help="fit the generator first (see the module docs)")
    parser.add_argument("--fit-lr", type=float, default=1e-2, help="learning rate of the fit")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="what to compare with fp32 (default: auto, the precision tokenkit picks here)")
    args = parser.parse_args()
    args.steps_given = args.steps is not None
    if args.steps is None:
        args.steps = 8
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gen = tk.build(args.model, pretrained=args.weights, **args.knobs)
    if is_autoregressive(gen):
        if args.fit_steps:
            print("  --fit-steps applies to masked generators only; ignored")
        bench_autoregressive(gen, args)
        return
    for batch in args.batch:
        bench_masked(gen, args, batch)


if __name__ == "__main__":
    main()
