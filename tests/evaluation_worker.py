"""Worker of tests/test_evaluation.py, launched with ``torchrun --nproc_per_node 2``."""

import sys
import warnings

import torch

import tokenkit as tk
from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID


def run(state_dir):
    """The evaluation both sides run: titok-tiny on 12 bundled crops, batches of 5, a tiny random Inception."""
    torch.manual_seed(0)
    inception = InceptionV3FID(InceptionConfig(weights="random", input_size=75))
    torch.manual_seed(1)
    tok = tk.build("titok-tiny").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tk.evaluate_reconstruction(tok, tk.data.sample_images(32, per_image=2, seed=0),
                                          metrics="fid,kid,pr,psnr,ssim,usage", batch_size=5,
                                          inception_weights=inception, state_dir=state_dir, progress=False)


if __name__ == "__main__":
    from accelerate import PartialState

    result = run(sys.argv[1] + "/state")
    if PartialState().is_main_process:
        result.save(sys.argv[1])
