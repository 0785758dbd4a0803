"""Worker of tests/test_distributed.py, launched with ``torchrun --nproc_per_node 2``."""

import sys

import tokenkit as tk
from tokenkit.train import TrainConfig, Trainer


def config(output_dir: str, batch_size: int) -> TrainConfig:
    """The run both sides train: titok-tiny with FSQ on bundled crops, 6 steps, accumulation 1.

    fp32 on purpose: the comparison is within float noise, and ``precision="auto"`` picks bf16 on
    CPUs with native bf16 (AVX-512-bf16 / AMX), where one rounding differs by about 5e-4."""
    return TrainConfig(model="titok-tiny", knobs={"quantizer": "fsq"}, steps=6, batch_size=batch_size, lr=1e-3,
                       ema_decay=0.9, output_dir=output_dir, log_every=1, checkpoint_every=3, precision="fp32")


def images():
    return tk.data.sample_images(32, per_image=4, resize=48, seed=0)


if __name__ == "__main__":
    trainer = Trainer(config(sys.argv[1], batch_size=4), images())
    assert trainer.accelerator.num_processes == 2, trainer.accelerator.distributed_type
    trainer.train(progress=False)
    trainer.save()
