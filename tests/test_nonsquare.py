"""Non-square images end to end: ``image_size=(H, W)`` in the TiTok encoder, decoders (ViT, proxy head + conv
pixel decoder), the size error, saved specs, the data transforms and weights loaded at another grid."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

import tokenkit as tk
from tokenkit.datasets.transforms import Transform, eval_transform, resize_cover, resize_shorter, train_transform
from tokenkit.errors import ConfigError, ContractError

SIZES = [(32, 48), (48, 32)]
PIXEL = tk.Part("vqgan", hidden_channels=8, channel_mult=(1, 1, 1, 1), num_res_blocks=1, z_channels=4,
                codebook_size=1024, norm_groups=4)
"""A small MaskGIT-VQGAN pixel decoder upsampling x8 (titok-tiny's patch size) from proxy-code logits."""


def _build(size, pixel_decoder: bool, **knobs):
    extra = dict(legacy=True, pixel_decoder=PIXEL) if pixel_decoder else {}
    return tk.build("titok-tiny", image_size=size, **extra, **knobs).eval()


@pytest.mark.parametrize("pixel_decoder", [False, True], ids=["pixel-head", "vqgan-pixel-decoder"])
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_shapes_through_tokenize_detokenize_and_forward(size, pixel_decoder):
    torch.manual_seed(0)
    tok = _build(size, pixel_decoder)
    rows, cols = size[0] // 8, size[1] // 8
    assert tok.image_size == size and tok.image_shape == size
    assert tok.encoder.grid_shape == tok.decoder.grid_shape == (rows, cols)
    assert tok.encoder.positional_embedding.shape[0] == 1 + rows * cols
    images = torch.rand(2, 3, *size)
    ids = tok.tokenize(images)
    assert ids.shape == (2, 8)
    assert tok.detokenize(ids).shape == (2, 3, *size)
    assert tok(images).images.shape == (2, 3, *size)
    if pixel_decoder:
        with torch.no_grad():
            logits = tok.decoder(tok.encode(images).codes)
        assert logits.shape == (2, rows * cols, 1024)  # proxy codes over the (rows, cols) grid


def test_square_model_is_unchanged_and_list_sizes_become_tuples():
    square = tk.build("titok-tiny", device="meta")
    assert square.image_size == 32 and square.image_shape == (32, 32)
    assert square.spec == tk.spec("titok-tiny")
    assert tk.spec("titok-tiny", image_size=[32, 48]) == tk.spec("titok-tiny", image_size=(32, 48))
    # the same parameter count per grid cell: only the position tables grow
    wide = tk.build("titok-tiny", image_size=(32, 48), device="meta")
    extra = sum(p.numel() for p in wide.parameters()) - sum(p.numel() for p in square.parameters())
    assert extra == 2 * (4 * 6 - 4 * 4) * 64


@pytest.mark.parametrize(("size", "message"), [
    ((32, 50), r"width 50 is not divisible by patch_size 8"),
    ((30, 48), r"height 30 is not divisible by patch_size 8"),
    ((32, 0), r"positive int or an \(H, W\) pair"),
    ((32, 48, 3), r"positive int or an \(H, W\) pair"),
])
def test_bad_image_size_names_the_side(size, message):
    with pytest.raises(ConfigError, match=message):
        tk.spec("titok-tiny", image_size=size)


@pytest.mark.parametrize(("model_size", "given", "expected"), [
    (32, (32, 49), (32, 32)),  # the 256x385-photo case: the size expected, not a divisibility message
    ((32, 48), (32, 32), (32, 48)),
])
def test_wrong_image_size_names_expected_given_and_the_resize_helper(model_size, given, expected):
    tok = tk.build("titok-tiny", image_size=model_size)
    with pytest.raises(ContractError) as info:
        tok.tokenize(torch.rand(1, 3, *given))
    message = str(info.value)
    assert f"(H, W) = {expected}" in message and f"(H, W) = {given}" in message
    assert "divisible" not in message
    size = model_size if isinstance(model_size, int) else str(tuple(model_size))
    assert f"tk.load_images(paths, size={size})" in message


def test_the_resize_helper_named_in_the_error_gives_the_size_expected():
    tok = tk.build("titok-tiny", image_size=(32, 48)).eval()
    chelsea = Path(tk.data.__file__).parent / "images" / "chelsea.jpg"  # 256x385
    images = tk.load_images(chelsea, size=tok.image_size)
    assert images.shape == (1, 3, 32, 48)
    assert tok.tokenize(images).shape == (1, 8)


def test_saved_spec_with_a_tuple_image_size_round_trips(tmp_path):
    tok = _build((32, 48), pixel_decoder=False)
    assert tk.TokenizerSpec.from_json(tok.spec.to_json()) == tok.spec
    tok.save_pretrained(tmp_path)
    loaded = tk.from_pretrained(tmp_path).eval()
    assert loaded.spec == tok.spec and loaded.image_size == (32, 48)
    images = torch.rand(2, 3, 32, 48)
    assert torch.equal(loaded.tokenize(images), tok.tokenize(images))


def test_square_weights_load_at_a_non_square_size(tmp_path):
    torch.manual_seed(0)
    tok = tk.build("titok-tiny").eval()
    tok.save_pretrained(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wide = tk.build("titok-tiny", image_size=(32, 48), pretrained=tmp_path).eval()
    assert any("from 4x4 to 4x6 patches" in str(w.message) for w in caught)
    assert wide.encoder.positional_embedding.shape == (1 + 4 * 6, 64)
    images = torch.rand(2, 3, 32, 48)
    assert wide.detokenize(wide.tokenize(images)).shape == (2, 3, 32, 48)
    # every other weight is the checkpoint's; at the original size the tokens are unchanged
    state, wide_state = tok.state_dict(), wide.state_dict()
    assert all(torch.equal(state[k], v) for k, v in wide_state.items() if not k.endswith(".positional_embedding"))
    square = tk.build("titok-tiny", pretrained=tmp_path).eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(square.tokenize(x), tok.tokenize(x))
    # and back: the 4x6 checkpoint's grid is read from its saved spec
    wide.save_pretrained(tmp_path / "wide")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tk.build("titok-tiny", image_size=(48, 32), pretrained=tmp_path / "wide")
    assert any("from 4x6 to 6x4 patches" in str(w.message) for w in caught)


@pytest.mark.parametrize("image_wh", [(60, 40), (40, 60), (100, 30)])
def test_eval_transform_crops_h_by_w(image_wh):
    image = Image.new("RGB", image_wh)
    assert eval_transform((16, 24))(image).shape == (3, 16, 24)
    assert eval_transform((24, 16))(image).shape == (3, 24, 16)
    tensor = torch.rand(3, image_wh[1], image_wh[0])
    assert eval_transform((16, 24))(tensor).shape == (3, 16, 24)


def test_train_transform_random_crop_h_by_w_is_seeded():
    image = Image.new("RGB", (80, 40))
    transform = train_transform((16, 24))
    a = transform(image, generator=torch.Generator().manual_seed(1))
    b = transform(image, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 16, 24) and torch.equal(a, b)


def test_square_transforms_unchanged():
    image = Image.effect_noise((60, 40), 64).convert("RGB")
    assert resize_cover(image, 16).size == resize_shorter(image, 16).size == (24, 16)
    assert Transform(16, random_crop=False, flip=False) == eval_transform(16)
    assert Transform([16, 24]).size == (16, 24)
    with pytest.raises(ValueError, match="size"):
        Transform((16, 0))


def test_load_images_rejects_a_bad_size():
    chelsea = Path(tk.data.__file__).parent / "images" / "chelsea.jpg"
    with pytest.raises(ConfigError, match=r"\(H, W\) pair"):
        tk.load_images(chelsea, size=(32,))


@pytest.mark.parametrize("name", ["bundled", "image-folder", "webdataset"])
def test_datasets_give_h_by_w_items(name, tmp_path):
    from tokenkit.registry import get_part

    config_cls = get_part("dataset", name).Config
    base = {"bundled": {}, "image-folder": {"root": None}, "webdataset": {}}[name]
    if name == "image-folder":
        config = config_cls.example(tmp_path, size=[8, 12])
    elif name == "webdataset":
        config = config_cls.example(tmp_path, size=[8, 12])
    else:
        config = config_cls(size=[8, 12], resize=16, crops_per_epoch=3, **base)
    assert config.size == (8, 12)
    dataset = get_part("dataset", name)(config)
    item = next(iter(dataset)) if name == "webdataset" else dataset[0]
    assert item["image"].shape == (3, 8, 12)
    with pytest.raises(ValueError, match="size must be a positive int or an .H, W. pair"):
        config_cls(**{**({"root": str(tmp_path)} if name == "image-folder" else {}), "size": (8, 0)})
