"""Datasets as sequences (iteration ends, negative indices) and image modes decoded to known pixel values."""

import itertools

import numpy as np
import pytest
import torch
from PIL import Image

import tokenkit as tk


def _image_folder(tmp_path, n=3):
    for i in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tk.build_part("dataset", tk.Part("image-folder", root=str(tmp_path), size=8))


def _tokens(tmp_path, n=4):
    from tokenkit.datasets.tokens import write_jsonl

    path = tmp_path / "tokens.jsonl"
    write_jsonl(path, torch.arange(n * 3).reshape(n, 3), torch.arange(n))
    return tk.build_part("dataset", tk.Part("tokens", path=str(path)))


@pytest.mark.parametrize("make", [_image_folder, _tokens,
                                  lambda tmp_path: tk.build_part("dataset", tk.Part("bundled", size=16,
                                                                                    crops_per_epoch=5))])
def test_iteration_ends_and_negative_indices_count_from_the_end(tmp_path, make):
    dataset = make(tmp_path)
    items = list(itertools.islice(iter(dataset), len(dataset) + 1))  # one more if __getitem__ wrapped around
    assert len(items) == len(dataset) > 0
    first, last = dataset[0], dataset[-1]
    for key, value in last.items():
        expected = items[-1][key]
        assert torch.equal(value, expected) if isinstance(value, torch.Tensor) else value == expected
    assert first.keys() == last.keys()
    with pytest.raises(IndexError, match=f"index {len(dataset)} out of range for {len(dataset)}"):
        dataset[len(dataset)]
    with pytest.raises(IndexError, match="out of range"):
        dataset[-len(dataset) - 1]
    with pytest.raises(TypeError, match="indexed by integers"):
        dataset["0"]
    assert dataset[np.int64(0)].keys() == first.keys()


def _modes(folder):
    """One 4x4 image per mode, with the RGB values every reader must give (8-bit)."""
    Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16)).save(folder / "a_grey16.png")  # 16-bit mid grey
    palette = Image.new("P", (4, 4))
    palette.putpalette([10, 20, 30] + [0] * 765)
    palette.save(folder / "b_palette.png")
    transparent = Image.new("P", (4, 4), 1)
    transparent.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    transparent.info["transparency"] = 1
    transparent.save(folder / "c_palette_transparent.png", transparency=1)
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(folder / "d_cmyk.jpg", quality=100)
    Image.new("LA", (4, 4), (0, 128)).save(folder / "e_grey_alpha.png")
    Image.new("RGBA", (4, 4), (200, 0, 0, 0)).save(folder / "f_rgba_transparent.png")
    Image.new("L", (4, 4), 77).save(folder / "g_grey.png")
    return {"a_grey16": (128, 128, 128), "b_palette": (10, 20, 30), "c_palette_transparent": (255, 255, 255),
            "d_cmyk": (255, 0, 0), "e_grey_alpha": (127, 127, 127), "f_rgba_transparent": (255, 255, 255),
            "g_grey": (77, 77, 77)}


def test_image_modes_convert_to_known_pixel_values_in_every_reader(tmp_path):
    expected = _modes(tmp_path)
    dataset = tk.build_part("dataset", tk.Part("image-folder", root=str(tmp_path), size=4))
    got = {item["key"]: tuple(round(v) for v in (item["image"][:, 0, 0] * 255).tolist()) for item in dataset}
    assert got == expected
    loaded = tk.load_images(tmp_path)
    assert [tuple(round(v) for v in (im[:, 0, 0] * 255).tolist()) for im in loaded] == list(expected.values())
