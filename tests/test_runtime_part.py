"""A quantizer registered at runtime is built by name inside a TiTok composition and
passes the contract checks with no other code."""

import dataclasses
import random

import torch

import tokenkit as tk
from tokenkit.testing import check_part


@dataclasses.dataclass(frozen=True)
class SignConfig:
    dim: int = 8

    @property
    def in_dim(self):
        return self.dim

    @property
    def out_dim(self):
        return self.dim

    @classmethod
    def tiny(cls, rng: random.Random):
        return cls(dim=rng.randint(1, 6))


class SignQuantizer(tk.Quantizer):
    """Binary quantizer: each channel is +-1; the id packs the signs (K = 2**dim)."""

    Config = SignConfig

    def __init__(self, config: SignConfig):
        super().__init__()
        self.config = config
        self.codebook_size = 2**config.dim
        self.register_buffer("bits", 2 ** torch.arange(config.dim), persistent=False)

    def forward(self, latents):
        signs = torch.where(latents >= 0, 1.0, -1.0).to(latents.dtype)
        codes = latents + (signs - latents).detach()
        indices = ((signs > 0).long() * self.bits).sum(-1)
        return tk.QuantizerOutput(codes, indices, (latents - signs.detach()).square().mean(), {})

    def lookup(self, indices):
        return torch.where((indices[..., None] & self.bits) > 0, 1.0, -1.0)


def test_runtime_registered_quantizer():
    tk.register("quantizer", "test-sign")(SignQuantizer)
    try:
        for seed in range(3):
            check_part("quantizer", "test-sign", random.Random(seed))
        spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("test-sign", dim=6))
        tok = tk.build(spec)
        images = torch.rand(2, 3, 32, 32)
        ids = tok.tokenize(images)
        assert ids.shape == (2, 8) and int(ids.max()) < 64
        assert tok.detokenize(ids).shape == images.shape
        assert tk.TokenizerSpec.from_json(spec.to_json()) == spec
    finally:
        tk.unregister("quantizer", "test-sign")
