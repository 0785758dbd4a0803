"""Nested tokens: train a tiny tail-drop tokenizer on the bundled images, then decode prefixes.

    python examples/tail_drop.py              # about 2.5 minutes on 2 CPU cores
    python examples/tail_drop.py --steps 3000 --out tail-drop-rd   # also rate_distortion.csv/.md/.json/.png

A `tail-drop` bottleneck (around `fsq`) replaces a random number of trailing
codes by a learned mask code in training, so the decoder learns to
reconstruct from any prefix. After training, the first k tokens are decoded
for every k (`rate_distortion`, which calls `evaluate_reconstruction` with
`num_tokens=k`) and PSNR / SSIM on held-out crops are printed against the bits
per image: they grow with k (the first tokens carry the coarse content).
`--metrics psnr,ssim,fid` adds rFID (slow on a CPU: the Inception runs in float64).
"""

from __future__ import annotations

import argparse

import torch

import tokenkit as tk
from tokenkit.evaluation.rate_distortion import rate_distortion
from tokenkit.metrics import psnr


def nested_tokenizer(width: int = 128, patch_size: int = 4) -> tk.Tokenizer:
    """titok-tiny's composition (32x32 images, 8 tokens) at ``width`` x 2 layers, with a
    tail-drop FSQ bottleneck (1000 codes per token)."""
    size = (width, 2, 4)
    spec = tk.spec("titok-tiny", encoder_size=size, decoder_size=size, patch_size=patch_size)
    quantizer = tk.Part("tail-drop", quantizer=tk.Part("fsq", levels=(8, 5, 5, 5)))
    return tk.build(spec.replace(quantizer=quantizer))


def train(tok: tk.Tokenizer, steps: int, *, batch: int = 32, lr: float = 3e-4, seed: int = 0) -> float:
    """Adam on MSE + bottleneck loss over random 32x32 crops of the bundled images. Returns the last loss."""
    torch.manual_seed(seed)
    data = tk.data.sample_images(32, per_image=64, resize=64, seed=seed)
    optimizer = torch.optim.Adam(tok.parameters(), lr=lr)
    tok.train()
    loss = torch.zeros(())
    for _ in range(steps):
        images = data[torch.randint(0, data.shape[0], (batch,))]
        out = tok(images)
        loss = (out.images - images).square().mean() + out.loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    tok.eval()
    return loss.item()


@torch.no_grad()
def prefix_psnr(tok: tk.Tokenizer, images: torch.Tensor) -> list[float]:
    """Mean PSNR of ``detokenize(ids[:, :k])`` for k = 1..N."""
    ids = tok.tokenize(images)
    return [psnr(tok.detokenize(ids[:, :k]), images).mean().item() for k in range(1, tok.num_tokens + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--metrics", default="psnr,ssim", help="metrics of evaluate_reconstruction (default psnr,ssim)")
    parser.add_argument("--out", help="folder for rate_distortion.csv/.md/.json/.png")
    args = parser.parse_args()
    tok = nested_tokenizer()
    loss = train(tok, args.steps)
    held_out = tk.data.sample_images(32, per_image=16, resize=64, seed=123)
    print(f"trained {args.steps} steps, last loss {loss:.4f}")
    result = rate_distortion(tok, held_out, num_tokens=list(range(1, tok.num_tokens + 1)), metrics=args.metrics,
                             progress=False)
    print(result.to_markdown())
    if args.out:
        print("wrote " + ", ".join(str(p) for p in result.save(args.out)))


if __name__ == "__main__":
    main()
