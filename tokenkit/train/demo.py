"""``tokenkit demo``: train a small tokenizer on the bundled images on CPU, then show what it learned.

It trains a 1D tokenizer (the ``titok-tiny`` composition at width 128, patch 8, with an
FSQ bottleneck: 8 tokens of 1000 codes = 80 bits per 32x32 image) on random
crops of the six bundled photographs, then writes a PNG grid of held-out
originals (top rows) and their reconstructions (bottom rows), and prints
PSNR, SSIM and codebook usage. Everything is offline; a progress bar follows
the training steps. Matmuls run in bf16 (autocast), which CPUs with AVX-512 bf16 run fastest.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

DEMO_KNOBS = {"encoder_size": (128, 2, 4), "decoder_size": (128, 2, 4), "patch_size": 8, "quantizer": "fsq"}


def run_demo(output: str | Path = "tokenkit-demo", *, steps: int = 2500, batch_size: int = 32, seed: int = 0,
             progress: bool = True) -> dict[str, float]:
    """Train, evaluate and write ``output/reconstructions.png`` and ``output/metrics.json``.

    Returns:
        ``{"psnr", "ssim", "usage", "perplexity", "seconds", "steps"}`` on held-out crops.
    """
    import json

    from torchvision.utils import make_grid, save_image

    import tokenkit as tk
    from tokenkit.train.trainer import TrainConfig, Trainer

    output = Path(output)
    start = time.perf_counter()
    train_images = tk.data.sample_images(32, per_image=64, resize=64, seed=seed)
    held_out = tk.data.sample_images(32, per_image=4, resize=64, seed=seed + 1000)
    config = TrainConfig(model="titok-tiny", knobs=DEMO_KNOBS, steps=steps, batch_size=batch_size, lr=6e-4,
                         end_lr=6e-5, warmup_steps=min(100, steps // 10), weight_decay=1e-4, ema_decay=0.99,
                         mixed_precision="bf16", seed=seed, output_dir=str(output), log_every=max(1, steps // 20))
    trainer = Trainer(config, train_images)
    trainer.train(progress=progress)
    result = trainer.evaluate(held_out)
    model = trainer.trained_model()
    with torch.no_grad():
        rec = model.detokenize(model.tokenize(held_out))
    metrics = {"psnr": result["psnr"], "ssim": result["ssim"], "usage": result["usage"],
               "perplexity": result["perplexity"], "seconds": time.perf_counter() - start, "steps": steps}
    output.mkdir(parents=True, exist_ok=True)
    shown = 12
    save_image(make_grid(torch.cat([held_out[:shown], rec[:shown]]), nrow=shown, padding=1),
               output / "reconstructions.png")
    (output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    model.save_pretrained(output / "model")
    return metrics
