"""tokenkit.flops counts the kernels torch's FlopCounterMode does not know (fused linear, CPU flash attention)."""

import pytest
import torch

import tokenkit as tk
from tokenkit.flops import count_flops
from tokenkit.layers.linear import ONEDNN_LINEAR


@pytest.mark.skipif(not ONEDNN_LINEAR, reason="torch without oneDNN's fused linear")
def test_fused_and_plain_inference_count_the_same_flops():
    tok = tk.build("titok-tiny").eval()
    images = torch.rand(2, 3, 32, 32)
    fused, ids = count_flops(lambda: tok.tokenize(images))
    decoded, _ = count_flops(lambda: tok.detokenize(ids))
    tok.encoder.backbone.fused_inference = False
    tok.decoder.fused_inference = False
    plain, _ = count_flops(lambda: tok.tokenize(images))
    plain_decoded, _ = count_flops(lambda: tok.detokenize(ids))
    assert fused == plain > 0
    assert decoded == plain_decoded > 0


def test_attention_flops_are_counted_on_cpu():
    q = torch.randn(1, 2, 16, 8)
    flops, _ = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert flops == 2 * (2 * 2 * 16 * 16 * 8)  # QK^T and AV, multiply-add = 2
