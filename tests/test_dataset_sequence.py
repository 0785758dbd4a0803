"""Map-style datasets follow Python's sequence protocol: iteration ends, negative indices count from the end."""

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
