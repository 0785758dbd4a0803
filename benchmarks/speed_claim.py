"""The TiTok paper's speed claim (410x faster than DiT-XL/2) measured on this machine.

TiTok generation + decoding per image against a DiT-XL/2-shaped 250-step
sampler + an SD-VAE-shaped decoder, all with random weights.

    python benchmarks/speed_claim.py                                    # 256 and 512 px, batch 1, fp32 and auto
    python benchmarks/speed_claim.py --sizes 512 --precision fp32 --timed-dit-steps 5
    python benchmarks/speed_claim.py --sizes 256 --timed-dit-steps 250  # all 250 DiT steps timed (slow on a CPU)

The claim (arXiv 2406.07550, abstract): on ImageNet 512x512, TiTok-L-64
(gFID 2.74) beats DiT-XL/2 (gFID 3.04) with 64x fewer image tokens, "leading to
410x faster generation"; the best variant (TiTok-B-128) is 74x faster. Those
throughputs were measured on a GPU. This script measures the same two
pipelines on whatever machine runs it (on a CPU a very different regime:
compute-bound, no kernel-launch overheads), per image:

- TiTok: ``maskgit-titok-l32`` generation (8 steps, the released sampling
  settings: linear guidance 4.5, i.e. the first step unguided, the others one
  batched conditional + unconditional pass) then ``titok-l32`` decoding
  (``detokenize``). At 512 px the TiTok-L-64 of the paper:
  ``tk.build("titok-l32", image_size=512, num_tokens=64)`` with
  ``tk.build("maskgit-titok-l32", num_tokens=64)``.
- DiT: a DiT-XL/2-shaped transformer written below with plain torch modules
  (28 blocks, width 1152, 16 heads, MLP 4608, patch 2 on a 32x32x4 latent at
  256 px, 64x64x4 at 512 px, adaLN-zero conditioning on timestep + class,
  learned-sigma output of 8 channels: 675.1 M parameters with the fixed
  position embedding, as DiT-XL/2), sampled as DiT's ``sample.py`` does:
  classifier-free guidance doubles the batch (``forward_with_cfg``), 250
  respaced DDPM steps with learned-range variance; then an SD-VAE-shaped
  decoder (Stable Diffusion's f8 KL-VAE decoder with 4 latent channels:
  block widths 128/256/512/512, 3 ResNet blocks per level, one attention block
  in the middle; 49.5 M parameters, also written below) decodes ``latent / 0.18215``.
  Neither is a DiT or VAE implementation for the library: they are
  shape-faithful stand-ins for timing, with random weights.

On a CPU 250 DiT-XL steps take long, so by default the sampler runs
``--timed-dit-steps`` steps after one untimed (FLOP-counting) step and the
250-step time is the median step time x 250; the output says so. With
``--timed-dit-steps 250`` (or more than ``--dit-steps``) every later step is timed
and summed (the untimed first step counts at the median step time). TiTok and
the VAE decoder get one untimed FLOP-counting call, then ``--repeats`` timed
calls (median). ``FLOP ratio`` is DiT's FLOPs per image
over TiTok's (tokenkit.flops.count_flops), a hardware-independent reference.
This is a benchmark (it prints numbers), not a test.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder leads sys.path; keep it from shadowing packages (benchmarks/tokenizers.py
# would hide Hugging Face's `tokenizers`).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import tokenkit as tk  # noqa: E402
from tokenkit.ablation import Timing  # noqa: E402
from tokenkit.flops import count_flops  # noqa: E402
from tokenkit.precision import PRECISIONS, autocast, describe, resolve_precision  # noqa: E402

PAPER = {512: "410x (TiTok-L-64 vs DiT-XL/2, GPU)"}  # the abstract's figure; it quotes none at 256 px
LABELS = [1, 7, 282, 604, 88, 130, 207, 980]


# ---- a DiT-XL/2-shaped transformer (Peebles & Xie 2023), random weights ---------------------------------------
def sincos_2d(width: int, side: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding ``(side * side, width)``."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    pos = torch.arange(side, dtype=torch.float64)
    gy, gx = torch.meshgrid(pos, pos, indexing="ij")
    parts = [f(g.reshape(-1, 1) * omega) for g in (gy, gx) for f in (torch.sin, torch.cos)]
    return torch.cat(parts, dim=1).float()


def timestep_features(t: torch.Tensor, dim: int = 256) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class DiTBlock(nn.Module):
    """Pre-LN transformer block with adaLN-zero: six modulation vectors from the conditioning."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.fc1 = nn.Linear(width, int(width * mlp_ratio))
        self.fc2 = nn.Linear(int(width * mlp_ratio), width)
        self.ada = nn.Linear(width, 6 * width)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(F.silu(c)).chunk(6, dim=-1)
        b, n, w = x.shape
        q, k, v = self.qkv(modulate(self.norm1(x), shift1, scale1)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, w)
        x = x + gate1[:, None] * self.proj(attn)
        h = self.fc2(F.gelu(self.fc1(modulate(self.norm2(x), shift2, scale2)), approximate="tanh"))
        return x + gate2[:, None] * h


class DiT(nn.Module):
    """DiT-XL/2 shape: patch-2 embedding of a ``(B, 4, S, S)`` latent, 28 adaLN-zero blocks, learned sigma."""

    def __init__(self, latent_size: int, width: int = 1152, depth: int = 28, heads: int = 16, patch: int = 2,
                 channels: int = 4, num_classes: int = 1000) -> None:
        super().__init__()
        self.patch, self.channels, self.side = patch, channels, latent_size // patch
        self.x_embedder = nn.Conv2d(channels, width, patch, stride=patch)
        self.register_buffer("pos_embed", sincos_2d(width, self.side)[None], persistent=False)
        self.t_embedder = nn.Sequential(nn.Linear(256, width), nn.SiLU(), nn.Linear(width, width))
        self.y_embedder = nn.Embedding(num_classes + 1, width)  # + the "null" class of guidance
        self.blocks = nn.ModuleList(DiTBlock(width, heads) for _ in range(depth))
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Linear(width, 2 * width)
        self.final = nn.Linear(width, patch * patch * 2 * channels)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = self.x_embedder(x).flatten(2).transpose(1, 2) + self.pos_embed
        c = self.t_embedder(timestep_features(t)) + self.y_embedder(y)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.final_ada(F.silu(c)).chunk(2, dim=-1)
        h = self.final(modulate(self.final_norm(h), shift, scale))  # (B, L, p*p*2C)
        p, s, out = self.patch, self.side, 2 * self.channels
        return h.view(b, s, s, p, p, out).permute(0, 5, 1, 3, 2, 4).reshape(b, out, s * p, s * p)

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
        """DiT's guided forward: the batch is ``[cond; uncond]``; both halves get the guided eps."""
        half = x[: len(x) // 2]
        out = self.forward(torch.cat([half, half]), t, y)
        eps, rest = out[:, : self.channels], out[:, self.channels:]
        cond, uncond = eps.chunk(2)
        guided = uncond + scale * (cond - uncond)
        return torch.cat([torch.cat([guided, guided]), rest], dim=1)


class Diffusion:
    """DDPM with a linear beta schedule over 1000 steps respaced to ``steps``, learned-range variance
    (as DiT's ``create_diffusion(str(steps))`` + ``p_sample_loop``, without clipping)."""

    def __init__(self, steps: int = 250, train_steps: int = 1000) -> None:
        betas = torch.linspace(1e-4, 0.02, train_steps, dtype=torch.float64)
        cumprod = torch.cumprod(1 - betas, 0)
        self.timesteps = torch.linspace(0, train_steps - 1, steps).round().long()
        alphas_cumprod = cumprod[self.timesteps]
        prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        betas = 1 - alphas_cumprod / prev
        posterior_var = betas * (1 - prev) / (1 - alphas_cumprod)
        self.log_var_min = torch.log(torch.cat([posterior_var[1:2], posterior_var[1:]])).float()
        self.log_var_max = torch.log(betas).float()
        self.recip = torch.sqrt(1 / alphas_cumprod).float()
        self.recipm1 = torch.sqrt(1 / alphas_cumprod - 1).float()
        self.coef1 = (betas * torch.sqrt(prev) / (1 - alphas_cumprod)).float()
        self.coef2 = ((1 - prev) * torch.sqrt(1 - betas) / (1 - alphas_cumprod)).float()
        self.steps = steps

    def p_sample(self, model: DiT, x: torch.Tensor, i: int, y: torch.Tensor, scale: float) -> torch.Tensor:
        t = torch.full((x.shape[0],), int(self.timesteps[i]), device=x.device)
        out = model.forward_with_cfg(x, t, y, scale).float()
        eps, v = out.chunk(2, dim=1)
        frac = (v + 1) / 2
        log_var = frac * self.log_var_max[i] + (1 - frac) * self.log_var_min[i]
        x0 = self.recip[i] * x - self.recipm1[i] * eps
        mean = self.coef1[i] * x0 + self.coef2[i] * x
        return mean + (torch.exp(0.5 * log_var) * torch.randn_like(x) if i > 0 else 0)


# ---- an SD-VAE-shaped decoder (Stable Diffusion's f8 KL autoencoder, 4 latent channels), random weights ------
class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(32, cin, eps=1e-6), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(32, cout, eps=1e-6), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))


class AttnBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm, self.qkv, self.proj = nn.GroupNorm(32, c, eps=1e-6), nn.Linear(c, 3 * c), nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x).flatten(2).transpose(1, 2)).chunk(3, dim=-1)  # one head over h*w pixels
        a = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(a).transpose(1, 2).reshape(b, c, h, w)


class VAEDecoder(nn.Module):
    """Latent ``(B, 4, S/8, S/8)`` -> image ``(B, 3, S, S)``: conv_in 512, mid (res, attn, res), four levels
    of three ResNet blocks at widths 512, 512, 256, 128 with nearest-x2 + conv upsampling between them."""

    def __init__(self, latent_channels: int = 4, widths: tuple[int, ...] = (128, 256, 512, 512)) -> None:
        super().__init__()
        top = widths[-1]
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.conv_in = nn.Conv2d(latent_channels, top, 3, padding=1)
        self.mid = nn.Sequential(ResBlock(top, top), AttnBlock(top), ResBlock(top, top))
        levels, cin = [], top
        for i, cout in enumerate(reversed(widths)):
            blocks: list[nn.Module] = [ResBlock(cin if j == 0 else cout, cout) for j in range(3)]
            if i < len(widths) - 1:
                blocks += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(cout, cout, 3, padding=1)]
            levels.append(nn.Sequential(*blocks))
            cin = cout
        self.up = nn.Sequential(*levels)
        self.norm_out = nn.GroupNorm(32, widths[0], eps=1e-6)
        self.conv_out = nn.Conv2d(widths[0], 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.up(self.mid(self.conv_in(self.post_quant_conv(z))))
        return self.conv_out(F.silu(self.norm_out(x)))


# ---- timing ------------------------------------------------------------------------------------------------------
class Clock:  # a hand clock, not Timer: DiT steps chain x, generate's ids feed decode; one untimed call each
    def __init__(self, device: torch.device) -> None:
        self.sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    def time(self, fn) -> tuple[float, Any]:
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - start, out


def time_titok(size: int, batch: int, repeats: int, device: torch.device, clock: Clock) -> dict[str, Any]:
    tokens = 32 if size == 256 else 64 * (size // 512) ** 2
    knobs = {} if size == 256 else dict(image_size=size, num_tokens=tokens)
    torch.manual_seed(0)
    tok = tk.build("titok-l32", device=device, **knobs).eval()
    gen = tk.build("maskgit-titok-l32", device=device, **({} if size == 256 else dict(num_tokens=tokens))).eval()
    labels = torch.tensor([LABELS[i % len(LABELS)] for i in range(batch)], device=device)

    def generate():
        return gen.generate(labels, steps=8, generator=torch.Generator(device).manual_seed(0))

    flops_gen, ids = count_flops(generate)  # also the warm-up calls
    flops_dec, _ = count_flops(lambda: tok.detokenize(ids))
    gen_times, dec_times = [], []
    for _ in range(repeats):
        seconds, ids = clock.time(generate)
        gen_times.append(seconds)
        seconds, _ = clock.time(lambda: tok.detokenize(ids))
        dec_times.append(seconds)
    name = "TiTok-L-32" if size == 256 else f"TiTok-L-{tokens}"
    return dict(name=name, tokens=tokens, generate=Timing(tuple(gen_times), 1), decode=Timing(tuple(dec_times), 1),
                flops=flops_gen + flops_dec,
                parameters=sum(p.numel() for p in tok.parameters()) + sum(p.numel() for p in gen.parameters()))


def time_dit(size: int, batch: int, repeats: int, steps: int, timed_steps: int, device: torch.device,
             clock: Clock) -> dict[str, Any]:
    latent = size // 8
    torch.manual_seed(0)
    dit = DiT(latent).to(device).eval()
    vae = VAEDecoder().to(device).eval()
    diffusion = Diffusion(steps)
    y = torch.tensor([LABELS[i % len(LABELS)] for i in range(batch)], device=device)
    y = torch.cat([y, torch.full_like(y, dit.num_classes)])  # guidance doubles the batch: [cond; null class]
    x = torch.randn(2 * batch, 4, latent, latent, device=device)
    full = timed_steps >= steps
    flops_step, x = count_flops(lambda: diffusion.p_sample(dit, x, steps - 1, y, 4.0))  # untimed warm-up step
    step_times = []
    for i in range(steps - 1 if full else min(timed_steps, steps - 1)):
        index = steps - 2 - i if full else steps - 2 - i % (steps - 1)
        seconds, x = clock.time(lambda: diffusion.p_sample(dit, x, index, y, 4.0))
        step_times.append(seconds)
    steps_timing = Timing(tuple(step_times), 1)
    sampler_seconds = (sum(step_times) + steps_timing.median) if full else steps_timing.median * steps
    latents = x[:batch] / 0.18215
    flops_vae, _ = count_flops(lambda: vae(latents))
    vae_timing = Timing(tuple(clock.time(lambda: vae(latents))[0] for _ in range(repeats)), 1)
    return dict(step=steps_timing, sampler_seconds=sampler_seconds, full=full, vae=vae_timing,
                flops=flops_step * steps + flops_vae, flops_forward=flops_step / (2 * batch),
                dit_parameters=sum(p.numel() for p in dit.parameters()) + dit.pos_embed.numel(),
                vae_parameters=sum(p.numel() for p in vae.parameters()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512", help="image sides (default 256,512)")
    parser.add_argument("--batch", type=int, default=1, help="images per call on both sides (default 1)")
    parser.add_argument("--precision", default="fp32,auto", help=f"among {', '.join(PRECISIONS)} (default fp32,auto)")
    parser.add_argument("--repeats", type=int, default=3, help="timed TiTok and VAE calls (default 3)")
    parser.add_argument("--dit-steps", type=int, default=250, help="DiT sampling steps (default 250, as DiT)")
    parser.add_argument("--timed-dit-steps", type=int, default=3,
                        help="DiT steps timed after one untimed step; the rest is extrapolated from their median "
                             "(default 3; >= --dit-steps times every step)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the printed report to FILE")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.timed_dit_steps < 1 or args.dit_steps < 2:
        parser.error("--repeats and --timed-dit-steps must be >= 1, --dit-steps >= 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = Clock(device)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    precisions: list[tuple[str, str]] = []
    for p in (p for p in args.precision.split(",") if p):
        resolved = resolve_precision(p, device)
        if all(r != resolved for _, r in precisions):
            precisions.append((p, resolved))
    report: list[str] = []

    def say(line: str = "") -> None:
        report.append(line)
        print(line, flush=True)

    say(f"# benchmarks/speed_claim.py, {datetime.datetime.now().isoformat(timespec='seconds')}")
    say()
    say(f"- torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, {platform.machine()}")
    for p, _ in precisions:
        say(f"- {describe(p, device)}")
    say(f"- batch {args.batch} image(s) per call on both sides (DiT's guidance runs 2 x {args.batch}); random weights")
    full = args.timed_dit_steps >= args.dit_steps
    say(f"- DiT sampler: {args.dit_steps} steps, " + ("every step timed but the first, FLOP-counting one, which "
                                                       "counts at the median step time" if full else
        f"{args.timed_dit_steps} steps timed after one untimed step, {args.dit_steps}-step time = median step "
        f"time x {args.dit_steps} (extrapolated)") + f"; TiTok and VAE decoder: median of {args.repeats} calls "
        "after one untimed call")
    say("- the paper's 410x: ImageNet 512x512, TiTok-L-64 vs DiT-XL/2, measured on a GPU (arXiv 2406.07550)")
    say()
    rows = []
    for size in sizes:
        for requested, resolved in precisions:
            label = requested if requested == resolved else f"{requested} ({resolved})"
            with torch.inference_mode(), autocast(resolved, device):
                print(f"{size} px {label}: TiTok ...", file=sys.stderr, flush=True)
                titok = time_titok(size, args.batch, args.repeats, device, clock)
                print(f"{size} px {label}: DiT + VAE ...", file=sys.stderr, flush=True)
                dit = time_dit(size, args.batch, args.repeats, args.dit_steps, args.timed_dit_steps, device, clock)
            titok_s = (titok["generate"].median + titok["decode"].median) / args.batch
            dit_s = (dit["sampler_seconds"] + dit["vae"].median) / args.batch
            timed = (f"all {args.dit_steps} (first at the median)" if dit["full"] else
                     f"{len(dit['step'].times)} of {args.dit_steps}, extrapolated")
            rows.append([f"{size}", label, titok["name"], f"{titok['generate'].median:.3g}",
                         f"{titok['decode'].median:.3g}", f"{titok_s:.3g}",
                         f"{dit['step'].median:.3g} ({dit['step'].spread * 100:.0f}%)", timed,
                         f"{dit['sampler_seconds']:,.1f}", f"{dit['vae'].median:.3g}", f"{dit_s:,.1f}",
                         f"**{dit_s / titok_s:,.0f}x**", f"{dit['flops'] / titok['flops']:,.0f}x",
                         PAPER.get(size, "–")])
            print(f"  ratio {dit_s / titok_s:,.1f}x", file=sys.stderr, flush=True)
            shapes = (f"- {size} px: DiT-XL/2 stand-in {dit['dit_parameters'] / 1e6:,.1f} M parameters (incl. the "
                      f"fixed position embedding), {dit['flops_forward'] / 1e9:,.1f} GFLOP per image per forward "
                      f"(DiT paper: {118.6 if size == 256 else 524.6 if size == 512 else '?'} GFLOPs counted as "
                      f"multiply-adds); SD-VAE decoder {dit['vae_parameters'] / 1e6:,.1f} M; {titok['name']} "
                      f"tokenizer + generator {titok['parameters'] / 1e6:,.1f} M")
            if shapes not in report:
                say(shapes)
    say()
    head = ["size", "precision", "TiTok", "generate s", "decode s", "TiTok s/image", "DiT step s (spread)",
            "DiT steps timed", f"DiT {args.dit_steps} steps s", "VAE decode s", "DiT s/image", "ratio",
            "FLOP ratio", "paper"]
    say("| " + " | ".join(head) + " |")
    say("|" + "---|" * len(head))
    for row in rows:
        say("| " + " | ".join(row) + " |")
    say()
    say(f"generate / decode / VAE decode: median seconds per call of {args.batch} image(s); s/image: (sampling + "
        "decoding) / batch; ratio: DiT s/image / TiTok s/image; FLOP ratio: the same for FLOPs per image "
        "(tokenkit.flops.count_flops); spread: (Q3 - Q1) / median of the timed DiT steps.")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
