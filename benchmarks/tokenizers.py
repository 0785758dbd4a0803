"""Benchmark tokenizers (encode, decode) and generators (generate), optionally against the official code.

Per model, batch and precision: images/s, GFLOP/s, the share of this machine's
matmul peak and the peak memory of a call.

    python benchmarks/tokenizers.py                                          # the default table (see below)
    python benchmarks/tokenizers.py --models titok-s128 --batch 1 --repeats 3 --precision fp32   # a quick look
    python benchmarks/tokenizers.py --official ~/src/1d-tokenizer --json bench.json --markdown bench.md
    python benchmarks/tokenizers.py --models maskgit-titok-l32 --batch 4 --steps 8 --official ~/src/1d-tokenizer

Default: titok-s128, titok-b64, titok-l32, titok-bl64-vq8k (encode and decode)
and maskgit-titok-l32 (generate), at batch 1 and 4, in fp32 and in
``precision="auto"`` (``tokenkit.precision``: bf16 autocast where the hardware
runs bf16 natively, else the same as fp32, and then not repeated).

Each workload gets one untimed call under ``FlopCounterMode`` (its FLOPs,
counted once per workload and batch), ``--warmup`` untimed calls, then
``--repeats`` timed calls inside ``torch.inference_mode()``; the table gives the
median seconds per call and its spread (relative interquartile range of the
call times, ``(Q3 - Q1) / median``). The machine's matmul peak is measured in the
same run (the fastest block of ``n x n`` matmuls that
``torch.utils.benchmark.Timer.blocked_autorange`` times in 1 s, fp32, and bf16 / fp16 where a
precision uses them, at the start and at the end; the higher counts), and ``% peak`` is
the workload's GFLOP/s over it. Peak memory is what a call adds to the process
while it runs: resident set size on CPU (``VmHWM`` after resetting it through
``/proc/self/clear_refs``, minus ``VmRSS`` before the call), and
``torch.cuda.max_memory_allocated`` over the allocated memory before on CUDA.

``--official PATH`` (a checkout of bytedance/1d-tokenizer; none of its code is
part of tokenkit) builds the official ``TiTok`` / ``ImageBert`` / ``UViTBert``
of the same composition, loads tokenkit's random weights into it (converted by
``tokenkit.weights.official``, strictly), and times it interleaved with tokenkit
on the same inputs (alternating which goes first), under the same precision
context. The table then also gives the official time, the speed-up, the
fraction of equal token ids and the largest absolute difference of the
outputs (decoded images clamped to [0, 1]; for ``generate``, the logits of one
forward pass; ``generate`` ids are compared with the official sampler's
random draws replayed into tokenkit's ``noise`` hook, in fp32). The official
code needs ``omegaconf``, ``einops``, ``huggingface_hub`` and, for the
generators, ``transformers``; ``torchvision``, ``accelerate``, ``requests`` and
``open_clip`` are imported by unrelated official modules and replaced by empty
stand-ins when they do not import.

Weights are random (seed 0): speed does not depend on them, and the parity
columns compare two implementations of the same function. This is a benchmark
(it prints numbers), not a test; nothing checks its timings.
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder leads sys.path, and its name would hide the `tokenizers` package
# (Hugging Face's, which transformers imports for the official generators).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import dataclasses
import datetime
import gc
import importlib
import importlib.util
import json
import platform
import resource
import subprocess
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils import benchmark

import tokenkit as tk
from tokenkit.ablation import Timing
from tokenkit.flops import count_flops
from tokenkit.precision import PRECISIONS, autocast, describe, resolve_precision

DEFAULT_MODELS = "titok-s128,titok-b64,titok-l32,titok-bl64-vq8k,maskgit-titok-l32"
LABELS = [1, 7, 282, 604, 88, 130, 207, 980]  # class ids of the generate workloads (repeated for larger batches)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---- measuring ---------------------------------------------------------------------------------------------------
def sync_of(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def matmul_gflops(precision: str, device: torch.device, n: int = 2048, min_run_time: float = 1.0) -> float:
    """GFLOP/s of the fastest ``n x n @ n x n`` matmul in ``precision`` (the machine's practical peak; the fastest
    block of ``Timer.blocked_autorange`` over ``min_run_time`` seconds, since a busy machine only ever slows a call
    down)."""
    a = torch.randn(n, n, device=device, dtype=DTYPES[precision])
    b = torch.randn(n, n, device=device, dtype=DTYPES[precision])
    # num_threads: Timer's default is 1 thread; keep torch's count. Its clock synchronises the current accelerator.
    timer = benchmark.Timer(stmt="a @ b", globals={"a": a, "b": b}, num_threads=torch.get_num_threads())
    return 2 * n**3 / min(timer.blocked_autorange(min_run_time=min_run_time).times) / 1e9


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(field)


class PeakMemory:
    """What one call adds to the process's memory at its peak (bytes), and the absolute peak."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda" if device.type == "cuda" else "rss"
        if self.method == "rss":
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")
                _status_kib("VmHWM")
            except OSError:  # not Linux, or not allowed: the process-lifetime peak is all there is
                self.method = "maxrss"
        self.before = 0

    def describe(self) -> str:
        return {"cuda": "torch.cuda.max_memory_allocated over the allocated memory before the call",
                "rss": "peak resident set size during the call (VmHWM, reset per call) over VmRSS before it",
                "maxrss": "process peak RSS (ru_maxrss; cannot be reset here, so only growth beyond earlier "
                          "peaks shows) over the RSS before the call"}[self.method]

    def start(self) -> None:
        if self.method == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.before = torch.cuda.memory_allocated(self.device)
        elif self.method == "rss":
            self.before = _status_kib("VmRSS") * 1024
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        else:
            self.before = _status_kib("VmRSS") * 1024 if sys.platform == "linux" else 0

    def stop(self) -> tuple[int, int]:
        """``(added bytes, absolute peak bytes)`` since ``start``."""
        if self.method == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.method == "rss":
            peak = _status_kib("VmHWM") * 1024
        else:
            scale = 1 if sys.platform == "darwin" else 1024
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        return max(0, peak - self.before), peak


# ---- the official implementation (optional) ----------------------------------------------------------------------
OPTIONAL_OFFICIAL_IMPORTS = ("torchvision", "torchvision.models", "torchvision.transforms", "accelerate",
                             "accelerate.utils", "accelerate.utils.operations", "requests", "open_clip")


class _Stub(types.ModuleType):
    """An empty stand-in module: any attribute is a placeholder class (never called on the timed path)."""

    __path__: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {"__init__": lambda self, *a, **k: None})


def import_official(path: str, generators: bool) -> dict[str, Any]:
    """Import the official model classes from a checkout at ``path``; returns ``{"TiTok": cls, ...}``."""
    root = Path(path).expanduser().resolve()
    if not (root / "modeling" / "titok.py").is_file():
        sys.exit(f"--official {path}: no modeling/titok.py there (expected a checkout of bytedance/1d-tokenizer)")
    missing = [m for m in ("omegaconf", "einops", "huggingface_hub") + (("transformers",) if generators else ())
               if importlib.util.find_spec(m) is None]
    if missing:
        sys.exit(f"--official needs {', '.join(missing)} (the official code imports them): "
                 f"pip install {' '.join(missing)}")
    if generators:
        importlib.import_module("transformers")  # before any stand-in: transformers probes torchvision itself
    stubbed = []
    for name in OPTIONAL_OFFICIAL_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001  (absent, or a wheel that does not load against this torch)
            sys.modules[name] = _Stub(name)
            stubbed.append(name)
    sys.path.insert(0, str(root))
    classes = {"TiTok": importlib.import_module("modeling.titok").TiTok}
    if generators:
        maskgit = importlib.import_module("modeling.maskgit")
        classes.update(ImageBert=maskgit.ImageBert, UViTBert=maskgit.UViTBert)
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or "not a git checkout"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    classes["info"] = f"{root} (commit {commit})" + (f"; stand-ins for {', '.join(stubbed)}" if stubbed else "")
    return classes


_SIZES = {512: "small", 768: "base", 1024: "large"}  # official ViT sizes by width (modeling/modules/blocks.py L227-241)


def official_tokenizer_config(spec: tk.TokenizerSpec) -> dict[str, Any]:
    """The official config tree of a tokenkit TiTok composition (checked by converting it back)."""
    from tokenkit.models.official_config import spec_from_official_config

    enc, dec, quantizer = spec.encoder.config, spec.decoder.config, spec.quantizer
    if quantizer.name != "vq":
        raise ValueError(f"the official comparison covers VQ TiTok tokenizers, not quantizer {quantizer.name!r}")
    widths = (enc["backbone"].config.get("width"), dec["backbone"].config.get("width"))
    if not all(w in _SIZES for w in widths):
        raise ValueError(f"ViT widths {widths} are not the official sizes (small 512, base 768, large 1024)")
    vq = dict(vit_enc_model_size=_SIZES[widths[0]], vit_dec_model_size=_SIZES[widths[1]],
              vit_enc_patch_size=enc["patch_size"], vit_dec_patch_size=dec["patch_size"],
              num_latent_tokens=enc["num_tokens"], is_legacy=bool(enc.get("legacy_reshape", False)),
              finetune_decoder=spec.pixel_decoder is not None, quantize_mode="vq",
              codebook_size=quantizer.config["codebook_size"], token_size=quantizer.config["dim"],
              use_l2_norm=bool(quantizer.config.get("l2_norm", False)),
              commitment_cost=float(quantizer.config.get("commitment_cost", 0.25)))
    config = {"model": {"vq_model": vq}, "dataset": {"preprocessing": {"crop_size": enc["image_size"]}}}
    if spec_from_official_config(config) != spec:
        raise ValueError("this composition has no official TiTok equivalent")
    return config


def official_generator_config(spec: tk.GeneratorSpec) -> dict[str, Any]:
    """The official config tree of a tokenkit MaskGIT composition (ImageBert or UViTBert)."""
    g = spec.generator.config
    backbone = g["backbone"]
    if backbone.name not in ("bert", "uvit"):
        raise ValueError(f"the official comparison covers bert / uvit generators, not {backbone.name!r}")
    b = backbone.config
    width = b["width"]
    mlp = b.get("mlp_dim") or int(round(width * b.get("mlp_ratio", 4.0)))
    gen = dict(model_type="ViT" if backbone.name == "bert" else "UViT", hidden_size=width,
               num_hidden_layers=b["depth"], num_attention_heads=b["heads"], intermediate_size=mlp,
               dropout=b.get("dropout", 0.1), attn_drop=b.get("attn_dropout", 0.1), image_seq_len=g["num_tokens"],
               condition_num_classes=g["num_classes"], class_label_dropout=g.get("label_dropout", 0.1))
    return {"model": {"vq_model": {"codebook_size": g["codebook_size"]}, "generator": gen}}


def build_official(classes: dict[str, Any], model: torch.nn.Module, spec: Any, device: torch.device):
    """The official model of ``spec`` with ``model``'s weights, strictly loaded, in eval mode."""
    from tokenkit.weights import official

    if isinstance(spec, tk.TokenizerSpec):
        net, keymap = classes["TiTok"](official_tokenizer_config(spec)), official.TITOK
    else:
        config = official_generator_config(spec)
        uvit = config["model"]["generator"]["model_type"] == "UViT"
        net = classes["UViTBert" if uvit else "ImageBert"](config)
        keymap = official.UVITBERT if uvit else official.IMAGEBERT
    missing, unexpected = net.load_state_dict(keymap.to_foreign(model.state_dict()), strict=False)
    bad = [k for k in [*missing, *unexpected] if k not in official.IGNORED_KEYS]
    if bad:
        raise RuntimeError(f"official model does not take tokenkit's weights: {bad[:5]}")
    return net.to(device).eval()


def official_noise(config: Any, batch: int, seed: int,
                   device: torch.device) -> Callable[[tuple[int, ...]], torch.Tensor]:
    """tokenkit ``noise`` hook that replays the official sampler's draws from ``torch.manual_seed(seed)``: per
    step, one ``(B,)`` label-drop draw per forward pass (one unguided, two guided), then ``(B, N, K)``, ``(B, N)``."""
    from tokenkit.generators.sampling import guidance_at

    gen = torch.Generator(device).manual_seed(seed)  # the stream torch.manual_seed(seed) starts on that device
    step = [0]

    def noise(shape: tuple[int, ...]) -> torch.Tensor:
        if len(shape) == 3:
            for _ in range(1 if guidance_at(config, step[0]) == 0 else 2):
                torch.rand(batch, generator=gen, device=device)
            return torch.rand(shape, generator=gen, device=device)
        step[0] += 1
        return torch.rand(shape, generator=gen, device=device)

    return noise


# ---- workloads ---------------------------------------------------------------------------------------------------
class Workload:
    """One timed operation on tokenkit (and optionally the official model), with a parity check of the outputs."""

    def __init__(self, name: str, ours: Callable[[], Any], theirs: Callable[[], Any] | None = None,
                 compare: Callable[[Any, Any, str], tuple[float | None, float | None]] | None = None) -> None:
        self.name, self.ours, self.theirs, self.compare = name, ours, theirs, compare


def tokenizer_workloads(tok, net, batch: int, device: torch.device) -> list[Workload]:
    images = torch.rand(batch, tok.in_channels, tok.image_size, tok.image_size,
                        generator=torch.Generator().manual_seed(0)).to(device)
    if tok.codebook_size is None:  # continuous bottleneck: codes in, codes out (no official comparison)
        with torch.inference_mode():
            codes = tok.encode(images).codes
        return [Workload("encode", lambda: tok.encode(images).codes), Workload("decode", lambda: tok.decode(codes))]
    with torch.inference_mode():
        ids = tok.tokenize(images)

    def same_ids(a, b, precision):
        return (a.reshape(b.shape[0], -1) == b.reshape(b.shape[0], -1)).float().mean().item(), None

    def same_images(a, b, precision):
        return None, (a.float() - b.float().clamp(0, 1)).abs().max().item()

    encode = Workload("encode", lambda: tok.tokenize(images))
    decode = Workload("decode", lambda: tok.detokenize(ids))
    if net is not None:
        encode.theirs, encode.compare = (lambda: net.encode(images)[1]["min_encoding_indices"]), same_ids
        decode.theirs, decode.compare = (lambda: net.decode_tokens(ids)), same_images
    return [encode, decode]


def generator_workloads(gen, net, batch: int, steps: int | None, device: torch.device) -> list[Workload]:
    labels = torch.tensor([LABELS[i % len(LABELS)] for i in range(batch)], device=device) % gen.num_classes
    sampling = {} if steps is None else {"steps": steps}
    s = gen.config.sampling
    n = steps or s.steps
    work = Workload("generate", lambda: gen.generate(labels, generator=torch.Generator(device).manual_seed(0),
                                                     **sampling))
    if net is not None:
        if not s.compat or s.schedule != "arccos":
            raise ValueError("the official sampler is tokenkit's compat sampler with the arccos schedule")

        def theirs():
            torch.manual_seed(0)
            return net.generate(labels, guidance_scale=s.guidance, guidance_decay=s.guidance_decay,
                                guidance_scale_pow=s.guidance_pow, randomize_temperature=s.temperature,
                                softmax_temperature_annealing=s.softmax_annealing, num_sample_steps=n)

        def compare(ours, official_ids, precision):
            same = None
            if precision == "fp32":  # under autocast the official draws its noise into bf16 / fp16 logits
                noise = official_noise(dataclasses.replace(s, steps=n), batch, 0, device)
                replayed = gen.generate(labels, noise=noise, **sampling)
                same = (replayed == official_ids).float().mean().item()
            masked = torch.full((batch, gen.num_tokens), gen.mask_id, device=device)
            a = gen(masked, labels, drop_labels=torch.zeros_like(labels, dtype=torch.bool))
            b = net(masked, labels.clone(), cond_drop_prob=0.0)
            return same, (a.float() - b.float()).abs().max().item()

        work.theirs, work.compare = theirs, compare
    return [work]


def time_pair(work: Workload, warmup: int, repeats: int, count: bool, device: torch.device,
              memory: PeakMemory, precision: str) -> dict[str, Any]:
    """Count FLOPs (when ``count``), warm up and time ``work`` on both sides, interleaved."""
    sides = [("tokenkit", work.ours)] + ([("official", work.theirs)] if work.theirs is not None else [])
    sync = sync_of(device)
    result: dict[str, Any] = {name: {} for name, _ in sides}
    outputs: dict[str, Any] = {}
    for name, fn in sides:
        if count:
            result[name]["flops"], _ = count_flops(fn)
        for _ in range(warmup):
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name, _ in sides}
    added: dict[str, list[int]] = {name: [] for name, _ in sides}
    peaks: dict[str, list[int]] = {name: [] for name, _ in sides}
    # a hand clock, not Timer: the two sides interleave call by call, each call's memory and output are kept
    for i in range(repeats):
        for name, fn in sides if i % 2 == 0 else sides[::-1]:  # alternate who goes first
            memory.start()
            start = time.perf_counter()
            outputs[name] = fn()
            sync()
            times[name].append(time.perf_counter() - start)
            add, peak = memory.stop()
            added[name].append(add)
            peaks[name].append(peak)
    for name, _ in sides:
        result[name].update(timing=Timing(tuple(times[name]), warmup), added_bytes=max(added[name]),
                            peak_bytes=max(peaks[name]))
    if work.compare is not None:
        result["ids_equal"], result["max_abs_diff"] = work.compare(outputs["tokenkit"], outputs["official"],
                                                                   precision)
    return result


# ---- the table ---------------------------------------------------------------------------------------------------
def numbers(side: dict[str, Any], flops: int, batch: int) -> dict[str, Any]:
    """The reported numbers of one implementation's measurement (``time_pair``'s entry for it)."""
    t: Timing = side["timing"]
    return dict(seconds=t.median, spread=t.spread, times=list(t.times), images_per_s=t.rate(batch), flops=flops,
                gflop_per_image=flops / batch / 1e9, gflop_per_s=flops / t.median / 1e9,
                added_mib=side["added_bytes"] / 2**20, peak_mib=side["peak_bytes"] / 2**20)


def _f(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"


def markdown(rows: list[dict[str, Any]], official: bool) -> str:
    head = ["model", "workload", "batch", "precision", "s/call", "spread", "images/s", "GFLOP/image", "GFLOP/s",
            "% peak", "+MiB"]
    if official:
        head += ["official s/call", "spread", "official +MiB", "speed-up", "ids equal", "max abs diff"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        gflop = _f(r["gflop_per_image"])
        o = r.get("official")
        if o is not None and abs(o["flops"] - r["flops"]) > 0.01 * r["flops"]:
            gflop += f" (official {_f(o['gflop_per_image'])})"
        cells = [r["model"], r["workload"], str(r["batch"]), r["precision_label"], _f(r["seconds"]),
                 f"{r['spread'] * 100:.1f}%", _f(r["images_per_s"]), gflop, _f(r["gflop_per_s"]),
                 _f(r["percent_of_peak"], 2), f"{r['added_mib']:,.0f}"]
        if official:
            if o is None:
                cells += ["–"] * 6
            else:
                ids = "–" if r["ids_equal"] is None else f"{r['ids_equal'] * 100:.1f}%"
                diff = "–" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
                cells += [_f(o["seconds"]), f"{o['spread'] * 100:.1f}%", f"{o['added_mib']:,.0f}",
                          f"{o['seconds'] / r['seconds']:.2f}x", ids, diff]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LEGEND = """\
s/call: median wall time of one call; spread: (Q3 - Q1) / median of the timed calls; images/s: batch / s/call.
GFLOP/image: FLOPs of one call (tokenkit.flops.count_flops: torch.utils.flop_counter, CPU flash attention and
oneDNN's fused linear included) / batch (the official count in brackets where it differs by over 1%: the two
compute some steps differently); GFLOP/s: FLOPs per call /
s/call (each implementation with its own count); % peak: GFLOP/s over the matmul peak of the precision's
compute type measured above. +MiB: {memory}; the largest over the timed calls.
speed-up: official s/call / tokenkit s/call. ids equal: share of equal token ids (encode: the codes; generate:
the sampled ids with the official random draws replayed; fp32 only). max abs diff: decode: images (official
clamped to [0, 1] as tokenkit's detokenize does); generate: logits of one forward pass."""


def _split(values: list[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[DEFAULT_MODELS],
                        help=f"tokenizer and generator names, comma or space separated (default {DEFAULT_MODELS})")
    parser.add_argument("--batch", nargs="+", default=["1,4"], help="batch sizes (default 1,4)")
    parser.add_argument("--precision", nargs="+", default=["fp32,auto"],
                        help=f"precisions among {', '.join(PRECISIONS)} (default fp32,auto)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per workload (default 5)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed calls per workload, after the FLOP-counting call (default 1)")
    parser.add_argument("--steps", type=int, help="generate: sampling steps (default: the model's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, i.e. the cores)")
    parser.add_argument("--official", metavar="PATH", help="checkout of bytedance/1d-tokenizer to compare with")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the peak-measuring matmul")
    parser.add_argument("--json", metavar="FILE", help="also write every number (and the raw times) as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="also write the printed report as a markdown file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # the device that Timer's clock (matmul peak) synchronises
    models, batches = _split(args.models), [int(b) for b in _split(args.batch)]

    precisions: list[tuple[str, str]] = []  # (requested, resolved), each resolved precision once
    skipped = []
    for p in _split(args.precision):
        resolved = resolve_precision(p, device)
        if any(r == resolved for _, r in precisions):
            skipped.append(f"{p} -> {resolved} (same as a row above; not repeated)")
        else:
            precisions.append((p, resolved))
    specs = {name: tk.spec(name) for name in models}
    generators = any(isinstance(s, tk.GeneratorSpec) for s in specs.values())
    classes = import_official(args.official, generators) if args.official else None

    report: list[str] = []

    def say(line: str = "") -> None:
        report.append(line)
        print(line, flush=True)

    say(f"# benchmarks/tokenizers.py, {datetime.datetime.now().isoformat(timespec='seconds')}")
    say()
    say(f"- torch {torch.__version__}, Python {platform.python_version()}, device {device}, "
        f"{torch.get_num_threads()} threads, {platform.machine()}")
    for p, _ in precisions:
        say(f"- {describe(p, device)}")
    for line in skipped:
        say(f"- {line}")
    say(f"- official: {classes['info'] if classes else 'not compared (--official PATH compares)'}")
    peaks = {r: [matmul_gflops(r, device, args.matmul_size)] for r in sorted({r for _, r in precisions} | {"fp32"})}
    say(f"- protocol: random weights (seed 0), inputs torch.rand (seed 0); per workload one FLOP-counting call, "
        f"{args.warmup} warm-up call(s), {args.repeats} timed calls"
        + (", interleaved with the official (alternating first)" if classes else "")
        + "; torch.inference_mode(); precision through tokenkit.precision.autocast")
    say()
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    memory = PeakMemory(device)
    for name in models:
        spec = specs[name]
        torch.manual_seed(0)
        model = tk.build(spec, device=device).eval()
        net = None
        if classes:
            try:
                net = build_official(classes, model, spec, device)
            except (ValueError, tk.TokenkitError) as err:
                notes.append(f"{name}: not compared with the official code ({err})")
                print(notes[-1], file=sys.stderr, flush=True)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name}: {params / 1e6:,.1f} M parameters", file=sys.stderr, flush=True)
        for batch in batches:
            if isinstance(spec, tk.TokenizerSpec):
                works = tokenizer_workloads(model, net, batch, device)
            else:
                works = generator_workloads(model, net, batch, args.steps, device)
            flops: dict[str, dict[str, int]] = {}
            for requested, resolved in precisions:
                for work in works:
                    with torch.inference_mode(), autocast(resolved, device):
                        result = time_pair(work, args.warmup, args.repeats, work.name not in flops, device, memory,
                                           resolved)
                    if work.name not in flops:
                        flops[work.name] = {side: result[side]["flops"] for side in ("tokenkit", "official")
                                            if side in result}
                    row = dict(model=name, workload=work.name, batch=batch, precision=requested, resolved=resolved,
                               precision_label=requested if requested == resolved else f"{requested} ({resolved})",
                               parameters=params, **numbers(result["tokenkit"], flops[work.name]["tokenkit"], batch),
                               ids_equal=result.get("ids_equal"), max_abs_diff=result.get("max_abs_diff"))
                    if "official" in result:
                        row["official"] = numbers(result["official"], flops[work.name]["official"], batch)
                    rows.append(row)
                    extra = ""
                    if "official" in row:
                        extra = (f", official {row['official']['seconds']:.3f} s "
                                 f"({row['official']['seconds'] / row['seconds']:.2f}x)")
                    print(f"  {name} {work.name} batch {batch} {row['precision_label']}: {row['seconds']:.3f} s "
                          f"(spread {row['spread'] * 100:.0f}%){extra}", file=sys.stderr, flush=True)
        del model, net, works
        gc.collect()
    for r in peaks:
        peaks[r].append(matmul_gflops(r, device, args.matmul_size))
    peak = {r: max(v) for r, v in peaks.items()}
    for row in rows:
        for entry in [row] + ([row["official"]] if "official" in row else []):
            entry["percent_of_peak"] = 100 * entry["gflop_per_s"] / peak[row["resolved"]]
    say(f"- matmul peak ({args.matmul_size}x{args.matmul_size}, fastest block of Timer.blocked_autorange, 1 s; "
        "start / end of the run): "
        + "; ".join(f"{r} {v[0]:,.0f} / {v[1]:,.0f} GFLOP/s" for r, v in peaks.items()))
    say()
    say(markdown(rows, classes is not None))
    say()
    say(LEGEND.format(memory=memory.describe()))
    for note in notes:
        say(f"note: {note}")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(report) + "\n")
    if args.json:
        info = dict(argv=sys.argv, torch=torch.__version__, device=str(device), threads=torch.get_num_threads(),
                    capability=[describe(p, device) for p, _ in precisions],
                    official=classes["info"] if classes else None, matmul_gflops=peaks, memory=memory.describe())
        Path(args.json).write_text(json.dumps(dict(info=info, rows=rows), indent=1) + "\n")


if __name__ == "__main__":
    main()
