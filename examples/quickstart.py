"""tokenkit quickstart: build, tokenize, detokenize, ablate, save/load, register a part.

Runs on CPU in a few seconds with random weights (the official checkpoints
load with ``tk.from_pretrained``; see the docs guide):

    pip install -e . && python examples/quickstart.py
"""

from __future__ import annotations

import dataclasses
import os
import tempfile

import torch

import tokenkit as tk
from tokenkit.testing import check_part

torch.manual_seed(0)

# 1. A tokenizer is a composition of registered parts; build one by name.
print("models:", tk.list_models("titok-*"))
tok = tk.build("titok-tiny")  # 32x32 images -> 8 tokens from a 256-entry codebook
images = torch.rand(2, 3, 32, 32)  # (B, C, H, W) float in [0, 1]
ids = tok.tokenize(images)  # (B, N) int64
rec = tok.detokenize(ids)  # (B, C, H, W) in [0, 1]
print("images", tuple(images.shape), "-> ids", tuple(ids.shape), ids.dtype, "-> rec", tuple(rec.shape))
print("bits per image:", tok.bits_per_image)  # N * log2(K) = 8 * 8

# 2. Reference models: count parameters on the meta device (no memory, no weights).
ref = tk.build("titok-b64", device="meta")
print(f"titok-b64: {sum(p.numel() for p in ref.parameters()):,} parameters")

# 3. Ablation by knob: same builder, other numbers.
tok128 = tk.build("titok-b64", num_tokens=128, device="meta")
print("titok-b64 with num_tokens=128:", tok128.num_tokens, "tokens,", tok128.bits_per_image, "bits per image")

# 4. Ablation by part swap: a spec is data; replace the VQ by a KL (VAE) bottleneck.
#    The latent widths of encoder and decoder follow the new bottleneck.
spec = tk.spec("titok-bl64-vq8k").replace(quantizer=tk.Part("gaussian", channels=16))
vae = tk.build(spec, device="meta")
print("swapped quantizer:", spec.quantizer)
print(f"titok-bl64-vq8k + gaussian: {sum(p.numel() for p in vae.parameters()):,} parameters (= titok-bl64-vae)")

# 5. Specs round-trip through JSON (this is what a saved model's config.json holds).
text = spec.to_json()
assert tk.TokenizerSpec.from_json(text) == spec
print(f"spec JSON round trip ok ({len(text)} characters)")

# 5b. Save and reload weights with their composition (model.safetensors + config.json + a README.md model card).
with tempfile.TemporaryDirectory() as folder:
    tok.save_pretrained(folder)
    again = tk.from_pretrained(folder)
    assert torch.equal(again.tokenize(images), ids)
    print(f"save_pretrained / from_pretrained round trip ok: {sorted(os.listdir(folder))}")


# 6. Your own part: register it by kind and name, then use it in any composition.
@dataclasses.dataclass(frozen=True)
class MyVQConfig:
    dim: int = 8  # bits per token; codebook size 2**dim

    @property
    def in_dim(self) -> int:  # latent width read (the spec sets the encoder's out_dim from it)
        return self.dim

    @property
    def out_dim(self) -> int:  # code width written (the spec sets the decoder's in_dim from it)
        return self.dim


@tk.register("quantizer", "my-vq")
class MyVQ(tk.Quantizer):
    """Lookup-free binary VQ: each channel's sign is one bit of the token id."""

    Config = MyVQConfig

    def __init__(self, config: MyVQConfig) -> None:
        super().__init__()
        self.codebook_size = 2**config.dim
        self.register_buffer("bits", 2 ** torch.arange(config.dim), persistent=False)

    def forward(self, latents: torch.Tensor) -> tk.QuantizerOutput:
        hard = torch.where(latents > 0, 1.0, -1.0).to(latents)
        codes = latents + (hard - latents).detach()  # straight-through gradient
        indices = ((hard > 0).long() * self.bits).sum(-1)  # (B, N) int64
        loss = (latents - hard.detach()).pow(2).mean()
        return tk.QuantizerOutput(codes, indices, loss, {})

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.where(indices[..., None] & self.bits > 0, 1.0, -1.0)


check_part("quantizer", "my-vq")  # the contract checks tokenkit's own parts pass
mine = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("my-vq", dim=10)))
ids = mine.tokenize(images)
print("my-vq:", tuple(ids.shape), "ids <", mine.codebook_size, "->", tuple(mine.detokenize(ids).shape))
