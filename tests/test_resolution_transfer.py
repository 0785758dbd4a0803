"""Weights loaded at another resolution: patch-grid position tables resampled, token tables and patch
weights refused (a tail-drop model takes a token prefix), ``strict=True`` refusing everything."""

from __future__ import annotations

import warnings
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tokenkit as tk
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.weights.resample import resample_grid_embedding

WIDTH = 64
"""titok-tiny's encoder and decoder width."""


def _expected(table, old, new, prefix=1):
    """An independent bicubic computation: the grid rows as a (1, W, h, w) image through F.interpolate."""
    grid = table[prefix:].float().T.reshape(1, table.shape[1], *old)
    image = F.interpolate(grid, size=new, mode="bicubic", antialias=True, align_corners=False)
    return torch.cat([table[:prefix], image.reshape(table.shape[1], -1).T.to(table.dtype)])


def _resampled(caught):
    return [w for w in caught if issubclass(w.category, UserWarning) and "resampled" in str(w.message)]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """titok-tiny (32 px, 8 px patches: a 4x4 grid) saved to a folder, with the model."""
    torch.manual_seed(0)
    tok = tk.build("titok-tiny")
    folder = tmp_path_factory.mktemp("tiny")
    tok.save_pretrained(folder)
    return tok, folder


def _images(size, batch=2):
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


# ---- the resampling function -------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid", [(4, 4), (3, 5)])
def test_an_unchanged_grid_is_the_identity(grid):
    table = torch.randn(1 + grid[0] * grid[1], 8)
    out = resample_grid_embedding(table, grid, grid)
    assert torch.equal(out, table) and out.dtype == table.dtype


@pytest.mark.parametrize(("old", "new", "prefix"), [((4, 4), (6, 6), 1), ((4, 4), (3, 3), 1), ((4, 5), (6, 3), 1),
                                                    ((2, 3), (5, 7), 0), ((3, 3), (4, 4), 2)])
def test_resampling_is_antialiased_bicubic_interpolation_of_the_grid(old, new, prefix):
    table = torch.randn(prefix + old[0] * old[1], 8, generator=torch.Generator().manual_seed(1))
    out = resample_grid_embedding(table, old, new, prefix_rows=prefix)
    assert out.shape == (prefix + new[0] * new[1], 8)
    assert torch.equal(out[:prefix], table[:prefix])  # class rows kept
    torch.testing.assert_close(out, _expected(table, old, new, prefix), rtol=0, atol=1e-6)


def test_resampling_runs_in_float32_and_keeps_the_dtype():
    table = torch.randn(1 + 16, 8).to(torch.bfloat16)
    out = resample_grid_embedding(table, (4, 4), (6, 6))
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, _expected(table, (4, 4), (6, 6)))


def test_resampling_equals_timms_resample_abs_pos_embed():
    pos_embed = pytest.importorskip("timm.layers.pos_embed")
    table = torch.randn(1 + 4 * 5, 8)
    ours = resample_grid_embedding(table, (4, 5), (7, 6))
    theirs = pos_embed.resample_abs_pos_embed(table[None], new_size=[7, 6], old_size=[4, 5], num_prefix_tokens=1)
    assert torch.equal(ours, theirs[0])


def test_a_table_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match=r"1 \+ 4x4 rows, got shape \(16, 8\)"):
        resample_grid_embedding(torch.zeros(16, 8), (4, 4), (5, 5))


# ---- loading at another image size -------------------------------------------------------------------------------
def test_weights_load_at_a_larger_image_size_with_one_warning(saved):
    tok, folder = saved
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big = tk.build("titok-tiny", image_size=48, pretrained=folder)
    (warning,) = _resampled(caught)
    assert str(warning.message) == (
        "resampled decoder.positional_embedding, encoder.positional_embedding from 4x4 to 6x6 patches (bicubic, "
        "antialiased); fine-tune for best quality")
    state, original = big.state_dict(), tok.state_dict()
    for key in ("encoder.positional_embedding", "decoder.positional_embedding"):
        assert state[key].shape == (1 + 6 * 6, WIDTH)
        torch.testing.assert_close(state[key], _expected(original[key], (4, 4), (6, 6)), rtol=0, atol=1e-6)
    assert all(torch.equal(state[k], v) for k, v in original.items() if not k.endswith(".positional_embedding"))
    with torch.no_grad():
        ids = big.tokenize(_images(48))
        assert ids.shape == (2, 8)
        assert big.detokenize(ids).shape == (2, 3, 48, 48)


def test_weights_load_at_a_smaller_image_size(saved):
    _, folder = saved
    with pytest.warns(UserWarning, match="from 4x4 to 2x2 patches"):
        small = tk.build("titok-tiny", image_size=16, pretrained=folder)
    assert small.detokenize(small.tokenize(_images(16))).shape == (2, 3, 16, 16)


def test_one_warning_when_the_model_is_rebuilt_off_meta(tmp_path):
    """fsq has non-persistent buffers: the meta-built model is rebuilt and takes the fitted tensors."""
    fsq = tk.Part("fsq", levels=(4, 4))
    tk.build("titok-tiny", quantizer=fsq).save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big = tk.build("titok-tiny", quantizer=fsq, image_size=48, pretrained=tmp_path)
    assert len(_resampled(caught)) == 1
    assert big.tokenize(_images(48)).shape == (2, 8)


def test_the_original_size_gives_the_same_tokens_and_no_warning(saved):
    tok, folder = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = tk.build("titok-tiny", pretrained=folder)
        same = tk.from_pretrained(folder, strict=True)
    images = _images(32)
    with torch.no_grad():
        assert torch.equal(again.tokenize(images), tok.tokenize(images))
        assert torch.equal(same.tokenize(images), tok.tokenize(images))


def test_strict_refuses_another_grid_naming_both_shapes(saved):
    _, folder = saved
    with pytest.raises(WeightsError) as info:
        tk.build("titok-tiny", image_size=48, pretrained=folder, strict=True)
    text = str(info.value)
    assert "encoder.positional_embedding (checkpoint (17, 64), model (37, 64))" in text
    assert ("patch grid 4x4 vs 6x6, not resampled with strict=True: decoder.positional_embedding, "
            "encoder.positional_embedding") in text
    with pytest.raises(ConfigError, match="strict apply to pretrained weights"):
        tk.build("titok-tiny", strict=True)


def test_another_num_tokens_is_refused_naming_both_shapes(saved):
    _, folder = saved
    with pytest.raises(WeightsError) as info:
        tk.build("titok-tiny", num_tokens=4, pretrained=folder)
    text = str(info.value)
    assert "encoder.latent_tokens (checkpoint (8, 64), model (4, 64))" in text
    assert "a different num_tokens is not resampled (only a model whose quantizer supports_prefix" in text


def test_another_patch_size_is_refused_naming_both_shapes(saved):
    _, folder = saved
    with pytest.raises(WeightsError) as info:  # 64 px / 16 px patches: the same 4x4 grid
        tk.build("titok-tiny", image_size=64, patch_size=16, pretrained=folder)
    text = str(info.value)
    assert "encoder.patch_embed.weight (checkpoint (64, 3, 8, 8), model (64, 3, 16, 16))" in text
    assert "decoder.ffn.0.weight (checkpoint (192, 64), model (768, 64))" in text
    assert "a different patch size is not resampled: decoder.ffn.0.weight, encoder.patch_embed.weight" in text
    assert "positional_embedding" not in text


# ---- tail drop: a token prefix ------------------------------------------------------------------------------------
TAIL_DROP = tk.Part("tail-drop", quantizer=tk.Part("vq", codebook_size=256, dim=8))


def test_a_tail_drop_model_takes_the_first_tokens_of_a_checkpoint_with_more(tmp_path):
    torch.manual_seed(0)
    tok = tk.build("titok-tiny", quantizer=TAIL_DROP)
    tok.save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        short = tk.build("titok-tiny", quantizer=TAIL_DROP, num_tokens=4, image_size=48, pretrained=tmp_path)
    (warning,) = [w for w in caught if issubclass(w.category, UserWarning)]  # one warning for both changes
    assert "took the first 4 of 8 token rows of decoder.latent_token_positional_embedding, " in str(warning.message)
    assert "from 4x4 to 6x6 patches" in str(warning.message)
    for key in ("encoder.latent_tokens", "encoder.latent_token_positional_embedding",
                "decoder.latent_token_positional_embedding"):
        assert torch.equal(short.state_dict()[key], tok.state_dict()[key][:4])
    with torch.no_grad():
        assert short.detokenize(short.tokenize(_images(48))).shape == (2, 3, 48, 48)
    with pytest.raises(WeightsError, match=r"strict=True takes no prefix"):
        tk.build("titok-tiny", quantizer=TAIL_DROP, num_tokens=4, pretrained=tmp_path, strict=True)
    short.save_pretrained(tmp_path / "short")
    with pytest.raises(WeightsError, match=r"encoder.latent_tokens \(checkpoint \(4, 64\), model \(8, 64\)\)"):
        tk.build("titok-tiny", quantizer=TAIL_DROP, pretrained=tmp_path / "short")  # fewer tokens: refused


# ---- the declarations, on any module -----------------------------------------------------------------------------
class _Grid(nn.Module):
    """A part with a (1 + 3 * 5, 4) table over a non-square grid."""

    grid_tables: ClassVar[dict[str, int]] = {"pos": 1}
    grid_shape = (3, 5)

    def __init__(self):
        super().__init__()
        self.pos = nn.Parameter(torch.zeros(1 + 3 * 5, 4))


def test_a_non_square_checkpoint_grid_comes_from_checkpoint_grids():
    model = nn.Sequential(_Grid())
    table = torch.randn(1 + 2 * 4, 4)
    with pytest.raises(WeightsError, match=r"0.pos \(checkpoint \(9, 4\), model \(16, 4\)\)\n.*cannot tell .* 8 rows"):
        tk.load_weights(model, {"0.pos": table})  # 8 rows: not a square
    with pytest.warns(UserWarning, match="resampled 0.pos from 2x4 to 3x5 patches"):
        tk.load_weights(model, {"0.pos": table}, checkpoint_grids={"0.pos": (2, 4)})
    assert torch.equal(model[0].pos.data, resample_grid_embedding(table, (2, 4), (3, 5)))


def test_a_256_model_loads_at_320_and_at_256x384(tmp_path):
    """The acceptance case at 256 px (a tiny-width TiTok with the official patch size 16: 16x16 patches)."""
    import warnings

    torch.manual_seed(0)
    knobs = dict(image_size=256, patch_size=16)
    original = tk.build("titok-tiny", **knobs)
    original.save_pretrained(tmp_path / "m256")
    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    for size, grid in ((320, "20x20"), ((256, 384), "16x24")):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = tk.build("titok-tiny", **{**knobs, "image_size": size}, pretrained=tmp_path / "m256")
        assert [str(w.message) for w in caught if "resampled" in str(w.message)] == [
            f"resampled decoder.positional_embedding, encoder.positional_embedding from 16x16 to {grid} patches "
            "(bicubic, antialiased); fine-tune for best quality"]
        height, width = (size, size) if isinstance(size, int) else size
        ids = model.tokenize(torch.rand(2, 3, height, width))
        assert ids.shape == (2, model.num_tokens) and model.detokenize(ids).shape == (2, 3, height, width)
    again = tk.build("titok-tiny", **knobs, pretrained=tmp_path / "m256")
    assert torch.equal(again.tokenize(images), original.tokenize(images))
