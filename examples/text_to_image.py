"""Text to image with tokenkit's parts: a text-aware tokenizer (TA-TiTok) and a text-conditioned generator (MaskGen).

    python examples/text_to_image.py                 # tiny random models, offline, a few seconds on CPU
    python examples/text_to_image.py --pretrained    # the released models (downloads about 5 GB once)

The tiny models have random weights, so the images are noise; the point is the API, which is the same for
the released models: ``tatitok-bl128-vq`` + ``maskgen-vq-xl`` (discrete tokens) and ``tatitok-bl32-vae`` +
``maskgen-kl-xl`` (continuous tokens with a diffusion head), as in the official README_MaskGen.md.
"""

from __future__ import annotations

import argparse

import torch

import tokenkit as tk

PROMPTS = ["A cozy cabin in the middle of a snowy forest, northern lights in the sky.",
           "A photo of a cup of coffee on a wooden table."]


def pairs(pretrained: bool) -> list[tuple[tk.Generator, tk.Tokenizer]]:
    """(generator, tokenizer) pairs: the VQ and the KL variant."""
    if pretrained:
        return [(tk.build("maskgen-vq-xl", pretrained=True), tk.build("tatitok-bl128-vq", pretrained=True)),
                (tk.build("maskgen-kl-xl", pretrained=True), tk.build("tatitok-bl32-vae", pretrained=True))]
    vq, kl = tk.build("maskgen-vq-tiny"), tk.build("maskgen-kl-tiny")
    return [(vq, tk.build("tatitok-tiny", codebook_size=vq.codebook_size, num_tokens=vq.num_tokens)),
            (kl, tk.build("tatitok-tiny", quantizer="gaussian", token_dim=kl.token_dim, num_tokens=kl.num_tokens))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", action="store_true", help="the released MaskGen / TA-TiTok weights")
    parser.add_argument("--out", default="text-to-image.png", help="PNG grid (one row per model pair)")
    args = parser.parse_args()
    rows = []
    models = pairs(args.pretrained)
    for generator, tokenizer in models:
        images = tk.generate_images(generator, tokenizer, prompts=PROMPTS, seed=0)
        print(f"{type(generator).__name__}: {tuple(images.shape)} images in [{images.min():.2f}, {images.max():.2f}]")
        rows.append(images)
    # tokenize is text-free; detokenize reads the prompt too (TA-TiTok's decoder is text-aware)
    tokenizer = models[0][1]
    ids = tokenizer.tokenize(rows[0])
    again = tokenizer.detokenize(ids, text=PROMPTS)
    print(f"{tokenizer.num_tokens} tokens per image -> {tuple(again.shape)} with text guidance")
    from torchvision.utils import save_image

    save_image(torch.cat(rows), args.out, nrow=len(PROMPTS))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
