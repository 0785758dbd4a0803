"""Text to image end to end: ``tk.generate_images(..., prompts=...)`` and ``tokenkit generate --prompt``."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

import tokenkit as tk
from tokenkit.cli import main
from tokenkit.errors import ContractError

PROMPTS = ["a cat on a sofa", "a red rocket"]


@pytest.fixture(scope="module")
def vq_pair():
    torch.manual_seed(0)
    gen = tk.build("maskgen-vq-tiny")
    return gen, tk.build("tatitok-tiny", codebook_size=gen.codebook_size, num_tokens=gen.num_tokens)


@pytest.fixture(scope="module")
def kl_pair():
    torch.manual_seed(0)
    gen = tk.build("maskgen-kl-tiny")
    return gen, tk.build("tatitok-tiny", quantizer="gaussian", token_dim=gen.token_dim, num_tokens=gen.num_tokens)


@pytest.mark.parametrize("pair", ["vq_pair", "kl_pair"])
def test_prompts_give_images_reproducibly_and_the_text_reaches_the_decoder(pair, request):
    gen, tok = request.getfixturevalue(pair)
    images = tk.generate_images(gen, tok, prompts=PROMPTS, seed=0, precision="fp32")
    assert images.shape == (2, 3, 32, 32) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, tk.generate_images(gen, tok, prompts=PROMPTS, seed=0, precision="fp32"))
    # the same tokens decoded by hand, with the prompts: what generate_images did
    tokens = gen.generate(gen.encode_text(PROMPTS), generator=torch.Generator().manual_seed(0))
    by_hand = (tok.detokenize(tokens, text=PROMPTS) if gen.codebook_size is not None
               else tok.decode(tokens, text=PROMPTS).clamp(0, 1))
    torch.testing.assert_close(images, by_hand, rtol=0, atol=1e-6)


def test_one_prompt_is_one_image(vq_pair):
    gen, tok = vq_pair
    assert tk.generate_images(gen, tok, prompts="a cup of coffee", seed=1).shape == (1, 3, 32, 32)


def test_a_text_generator_with_a_plain_tokenizer(vq_pair):
    gen, _ = vq_pair
    plain = tk.build("titok-tiny", codebook_size=gen.codebook_size, num_tokens=gen.num_tokens)
    assert tk.generate_images(gen, plain, prompts=PROMPTS, seed=0).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(
    ("which", "kwargs", "message"),
    [("vq", {"labels": [1, 2]}, "text-conditioned: give prompts"),
     ("vq", {}, "text-conditioned: give prompts"),
     ("vq", {"prompts": ["a", 3]}, "item 1 is int"),
     ("vq", {"prompts": []}, "empty"),
     ("class", {"prompts": ["a cat"]}, "class-conditional: give labels, not prompts"),
     ("class", {}, "class-conditional: give labels")],
)
def test_conditions_of_the_wrong_kind_are_refused(vq_pair, which, kwargs, message):
    gen, tok = vq_pair
    if which == "class":
        gen, tok = tk.build("maskgit-tiny"), tk.build("titok-tiny")
    with pytest.raises(ContractError, match=message):
        tk.generate_images(gen, tok, **kwargs)


def test_mismatched_pairs_are_refused(vq_pair, kl_pair):
    with pytest.raises(ContractError, match="continuous tokens; tokenizer 'vq' is discrete"):
        tk.generate_images(kl_pair[0], vq_pair[1], prompts=PROMPTS)
    with pytest.raises(ContractError, match="continuous bottleneck"):
        tk.generate_images(vq_pair[0], kl_pair[1], prompts=PROMPTS)
    with pytest.raises(ContractError, match="makes 8 tokens of width 4, the tokenizer decodes 8 of width 8"):
        tk.generate_images(kl_pair[0], tk.build("tatitok-tiny", quantizer="gaussian", token_dim=8), prompts=PROMPTS)
    with pytest.raises(ContractError, match="text-aware: generate with a text generator"):
        gen = tk.build("maskgit-tiny")
        tk.generate_images(gen, tk.build("tatitok-tiny"), labels=[1])


def test_cli_generate_from_prompts(tmp_path, capsys):
    out, folder = tmp_path / "t2i.png", tmp_path / "each"
    assert main(["generate", "maskgen-vq-tiny", "tatitok-tiny", "--prompt", "a cat on a sofa", "--prompt",
                 "A red rocket!", "--out", str(out), "--separate", str(folder), "--precision", "fp32"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert Image.open(out).size[0] > 32
    assert sorted(p.name for p in folder.iterdir()) == ["00000_a-cat-on-a-sofa.png", "00001_a-red-rocket.png"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["generate", "maskgen-vq-tiny", "tatitok-tiny"], "text-conditioned: give --prompt TEXT"),
     (["generate", "maskgit-tiny", "titok-tiny", "--prompt", "a cat"], "class-conditional: give --labels"),
     (["generate", "maskgen-vq-tiny", "tatitok-tiny", "--prompt", "a", "--labels", "1"], "not both"),
     (["generate", "maskgen-vq-tiny", "tatitok-tiny", "--prompt", " "], "--prompt is empty")],
)
def test_cli_prompt_errors_are_one_line(tmp_path, capsys, argv, message):
    assert main([*argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
