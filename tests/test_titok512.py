"""The paper's 512 px compositions (arXiv 2406.07550 Table 2): built on meta, counted, told apart on load."""

from __future__ import annotations

import pytest

import tokenkit as tk
from tokenkit.pretrained import infer_spec


def _count(name):
    return sum(p.numel() for p in tk.build(name, device="meta").parameters())


@pytest.mark.parametrize(("name", "base", "width", "tokens"), [("titok-l64-512", "titok-l32", 1024, 32),
                                                               ("titok-b128-512", "titok-b64", 768, 64)])
def test_512_tokenizers_are_the_256_ones_with_a_32x32_grid_and_twice_the_tokens(name, base, width, tokens):
    tok = tk.build(name, device="meta")
    assert (tok.image_size, tok.num_tokens, tok.codebook_size) == (512, 2 * tokens, 4096)
    # two grid tables (encoder, decoder) grow from 16x16 to 32x32 rows; three latent tables double
    extra = 2 * (32 * 32 - 16 * 16) * width + 3 * tokens * width
    assert _count(name) == _count(base) + extra
    assert tk.registry.get_model(name).weights is None  # no released weights


def test_512_generators_and_the_released_layout_that_they_share():
    assert tk.build("maskgit-titok-l64-512", device="meta").num_tokens == 64
    assert tk.build("maskgit-titok-b128-512", device="meta").num_tokens == 128
    # maskgit-titok-l64-512 has the layout of the released maskgit-titok-b64: weights go to the released one
    released = tk.build("maskgit-titok-b64", device="meta").state_dict()
    assert infer_spec(released).to_json() == tk.spec("maskgit-titok-b64").to_json()


def test_info_prints_the_512_model(capsys):
    from tokenkit.cli import main

    assert main(["info", "titok-l64-512"]) == 0
    out = capsys.readouterr().out
    assert "image size        512x512" in out and "tokens per image  64" in out and "642,725,903" in out
