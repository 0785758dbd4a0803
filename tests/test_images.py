"""tk.load_images / tk.save_images and tokenkit.images: decoding of every common mode, folders, errors, writes."""

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tokenkit as tk
from tokenkit.datasets.transforms import ImageDecodeError, decode_image, eval_transform
from tokenkit.images import OutputExistsError, list_images, load_image, output_names, read_images, to_rgb

BUNDLED = Path(tk.data.__file__).parent / "images"


def _rgb(path, w, h, seed=0, **save):
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, **save)
    return pixels


# --- the bundled images: official eval preprocessing ---------------------------------------------------------------

def test_load_images_of_the_bundled_folder_equal_eval_transform_of_each_file():
    images = tk.load_images(BUNDLED, size=64)
    assert images.shape == (6, 3, 64, 64) and images.dtype == torch.float32
    files = sorted(BUNDLED.glob("*.jpg"))
    assert list_images(BUNDLED) == files
    for image, path in zip(images, files):
        assert torch.equal(image, eval_transform(64)(decode_image(path)))


def test_eval_transform_matches_torchvision_resize_and_centre_crop():
    from torchvision import transforms as T

    reference = T.Compose([T.Resize(48, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
                           T.CenterCrop(48), T.ToTensor()])
    path = BUNDLED / "chelsea.jpg"  # 385x256: resize to 72x48, crop the centre
    with Image.open(path) as image:
        expected = reference(image.convert("RGB"))
    assert torch.equal(tk.load_images(path, size=48)[0], expected)


def test_size_none_keeps_the_size_and_requires_equal_sizes():
    same = tk.load_images([BUNDLED / "astronaut.jpg", BUNDLED / "retina.jpg"])
    assert same.shape == (2, 3, 256, 256)
    with pytest.raises(tk.ConfigError, match="pass size="):
        tk.load_images([BUNDLED / "astronaut.jpg", BUNDLED / "chelsea.jpg"])
    assert load_image(BUNDLED / "chelsea.jpg").shape == (3, 256, 385)


def test_a_list_keeps_its_order_and_folders_expand_in_place(tmp_path):
    _rgb(tmp_path / "b.png", 8, 8)
    (tmp_path / "sub").mkdir()
    _rgb(tmp_path / "sub" / "a.PNG", 8, 8)
    _rgb(tmp_path / ".hidden.png", 8, 8)
    (tmp_path / ".cache").mkdir()
    _rgb(tmp_path / ".cache" / "c.png", 8, 8)
    files = list_images([BUNDLED / "rocket.jpg", tmp_path])
    assert [p.relative_to(tmp_path).as_posix() if tmp_path in p.parents else p.name for p in files] == [
        "rocket.jpg", "b.png", "sub/a.PNG"]


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(tk.ConfigError, match="no such file or folder"):
        tk.load_images(tmp_path / "missing.png")
    with pytest.raises(tk.ConfigError, match="no images"):
        tk.load_images(tmp_path)
    with pytest.raises(tk.ConfigError, match="no image files"):
        tk.load_images([])
    with pytest.raises(tk.ConfigError, match="size"):
        tk.load_images(BUNDLED, size=0)
    with pytest.raises(tk.ConfigError, match="on_error"):
        tk.load_images(BUNDLED, on_error="ignore")


# --- corrupt files ---------------------------------------------------------------------------------------------------

def _folder_with_a_corrupt_file(tmp_path):
    _rgb(tmp_path / "a.png", 10, 12, seed=1)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (tmp_path / "c.txt").write_text("notes, not an image")  # not an image extension: never read
    _rgb(tmp_path / "d.png", 10, 12, seed=2)
    return tmp_path


def test_a_corrupt_file_raises_naming_it(tmp_path):
    folder = _folder_with_a_corrupt_file(tmp_path)
    assert [p.name for p in list_images(folder)] == ["a.png", "b.jpg", "d.png"]
    with pytest.raises(ImageDecodeError, match="b.jpg"):
        tk.load_images(folder)


def test_skip_leaves_out_the_corrupt_file_and_says_which(tmp_path):
    folder = _folder_with_a_corrupt_file(tmp_path)
    with pytest.warns(RuntimeWarning, match="b.jpg"):
        images = tk.load_images(folder, on_error="skip")
    assert images.shape == (2, 3, 12, 10)
    with pytest.warns(RuntimeWarning):
        loaded = read_images(folder, 8, on_error="skip")
    assert [p.name for p in loaded.paths] == ["a.png", "d.png"] and loaded.images.shape == (2, 3, 8, 8)
    assert [p.name for p, _ in loaded.skipped] == ["b.jpg"] and "b.jpg" in loaded.skipped[0][1]


def test_a_truncated_file_and_a_named_text_file_are_decode_errors(tmp_path):
    buffer = io.BytesIO()
    _rgb(buffer, 64, 64, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "notes.txt").write_text("hello")
    for name in ("cut.jpg", "notes.txt"):
        with pytest.raises(ImageDecodeError, match=name):
            tk.load_images(tmp_path / name)
    with warnings.catch_warnings(), pytest.raises(ImageDecodeError, match="none of the 2"):
        warnings.simplefilter("ignore")
        tk.load_images([tmp_path / "cut.jpg", tmp_path / "notes.txt"], on_error="skip")


# --- modes -----------------------------------------------------------------------------------------------------------

def _load_one(image, tmp_path, name="x.png", **save):
    image.save(tmp_path / name, **save)
    return tk.load_images(tmp_path / name)[0]


def test_grayscale_becomes_three_equal_channels(tmp_path):
    out = _load_one(Image.new("L", (4, 3), 100), tmp_path)
    assert out.shape == (3, 3, 4) and torch.allclose(out, torch.full_like(out, 100 / 255))


def test_rgba_and_la_are_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))  # opaque red next to a transparent black pixel
    out = _load_one(rgba, tmp_path)
    assert out[:, 0, 0].tolist() == [1.0, 1.0, 1.0] and out[:, 0, 1].tolist() == [1.0, 0.0, 0.0]
    half = _load_one(Image.new("LA", (1, 1), (0, 128)), tmp_path, "la.png")
    assert torch.allclose(half, torch.full_like(half, 127 / 255))  # 255 * (1 - 128/255)


def test_palette_with_a_transparent_index(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.info["transparency"] = 0  # index 0 (black) is transparent
    out = _load_one(image, tmp_path, transparency=0)
    assert out[:, 0, 0].tolist() == [1.0, 1.0, 1.0] and out[:, 0, 1].tolist() == [0.0, 0.0, 1.0]


def test_cmyk_jpeg_uses_pillows_conversion(tmp_path):
    image = Image.new("CMYK", (8, 8), (0, 255, 255, 0))  # red in CMYK
    out = _load_one(image, tmp_path, "cmyk.jpg", quality=100)
    assert out[0].mean() > 0.9 and out[1].mean() < 0.1 and out[2].mean() < 0.1


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_mid_grey_is_half_not_white(tmp_path, mode):
    if mode == "I;16":
        image = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
        out = _load_one(image, tmp_path, "grey16.png")
        assert Image.open(tmp_path / "grey16.png").mode == "I;16"
    else:
        image = Image.frombytes("I;16B", (2, 2), (32768).to_bytes(2, "big") * 4)
        out = tk.images.to_rgb(image)
        out = torch.from_numpy(np.asarray(out, dtype=np.float32) / 255).permute(2, 0, 1)
    assert image.convert("RGB").getpixel((0, 0)) == (255, 255, 255)  # what Pillow alone gives
    assert torch.allclose(out, torch.full_like(out, 128 / 255))


def test_32_bit_int_and_float_images_are_scaled(tmp_path):
    full = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))  # mode I: read as 16-bit data
    assert to_rgb(full).getpixel((1, 0)) == (255, 255, 255) and to_rgb(full).getpixel((0, 0)) == (0, 0, 0)
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))  # mode F in [0, 1]
    assert [to_rgb(unit).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    byte_scale = Image.fromarray(np.array([[0.0, 100.0, 300.0]], dtype=np.float32))  # 0-255 scale, clipped
    assert [to_rgb(byte_scale).getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]
    tiff = tmp_path / "f.tif"
    unit.save(tiff)
    assert (tk.load_images(tiff)[0, 0, 0] * 255).round().tolist() == [0, 128, 255]


def test_decode_image_scales_16_bit_and_flattens_alpha_over_white(tmp_path):
    Image.fromarray(np.full((2, 2), 65535, dtype=np.uint16)).save(tmp_path / "white16.png")
    Image.fromarray(np.full((2, 2), 32768, dtype=np.uint16)).save(tmp_path / "grey16.png")
    assert decode_image(tmp_path / "grey16.png").getpixel((0, 0)) == (128, 128, 128)
    assert decode_image(tmp_path / "white16.png").getpixel((0, 0)) == (255, 255, 255)
    Image.new("RGBA", (1, 1), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    # the official reader drops the alpha channel and shows the hidden colour (10, 20, 30)
    assert decode_image(tmp_path / "rgba.png").getpixel((0, 0)) == (255, 255, 255)
    Image.new("RGB", (1, 1), (10, 20, 30)).save(tmp_path / "rgb.png")
    assert decode_image(tmp_path / "rgb.png").getpixel((0, 0)) == (10, 20, 30)


def _rotated_jpeg(path):
    """A 20x10 JPEG, left half red, right half blue, tagged 'rotate 90 CW to display' (orientation 6)."""
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[:, :10, 0] = 255
    pixels[:, 10:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif, quality=100)


def test_exif_orientation_is_applied_by_default(tmp_path):
    _rotated_jpeg(tmp_path / "phone.jpg")
    upright = tk.load_images(tmp_path / "phone.jpg")[0]
    assert upright.shape == (3, 20, 10)  # displayed upright: 10 wide, 20 tall
    assert upright[0, 2, 5] > 0.9 and upright[2, 17, 5] > 0.9  # red on top, blue below after a 90 degree turn
    assert tk.load_images(tmp_path / "phone.jpg", exif=False)[0].shape == (3, 10, 20)
    assert decode_image(tmp_path / "phone.jpg").size == (20, 10)  # the official reader ignores EXIF
    assert decode_image(tmp_path / "phone.jpg", exif=True).size == (10, 20)


# --- save ------------------------------------------------------------------------------------------------------------

def test_save_and_load_round_trip_is_exact_in_uint8(tmp_path):
    pixels = torch.randint(0, 256, (3, 3, 5, 7), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images = pixels.float() / 255
    paths = tk.save_images(images, tmp_path / "out")
    assert [p.name for p in paths] == ["00000.png", "00001.png", "00002.png"]
    assert torch.equal(tk.load_images(tmp_path / "out"), images)
    for path, expected in zip(paths, pixels):
        assert np.array_equal(np.asarray(Image.open(path)), expected.permute(1, 2, 0).numpy())
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix == ".tmp"]  # no temporary files left


def test_save_clamps_and_rounds(tmp_path):
    images = torch.tensor([-0.5, 0.5 / 255, 1.6 / 255, 2.0]).reshape(1, 1, 1, 4).expand(1, 3, 1, 4)
    (path,) = tk.save_images(images, tmp_path / "one.png")
    assert path == tmp_path / "one.png"
    assert np.asarray(Image.open(path))[0, :, 0].tolist() == [0, 0, 2, 255]  # round half to even, as torch.round


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    images = torch.zeros(2, 3, 4, 4)
    tk.save_images(images, tmp_path, names=["a", "b.png"])
    (tmp_path / "c.png").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="a.png already exists .and 1 more.; pass overwrite=True"):
        tk.save_images(torch.ones(2, 3, 4, 4), tmp_path, names=["a", "b"])
    with pytest.raises(OutputExistsError, match="c.png"):
        tk.save_images(torch.ones(2, 3, 4, 4), tmp_path, names=["new", "c"])
    assert not (tmp_path / "new.png").exists()  # nothing written when one file exists
    tk.save_images(torch.ones(2, 3, 4, 4), tmp_path, names=["a", "b"], overwrite=True)
    assert tk.load_images([tmp_path / "a.png", tmp_path / "b.png"]).min() == 1


def test_save_formats_and_bad_arguments(tmp_path):
    image = torch.full((1, 3, 8, 8), 0.5)
    (jpg,) = tk.save_images(image, tmp_path / "x.jpg")
    (webp,) = tk.save_images(image, tmp_path, names=["y"], format="webp")
    assert Image.open(jpg).format == "JPEG" and Image.open(webp).format == "WEBP" and webp.name == "y.webp"
    assert torch.equal(tk.load_images(webp), (image * 255).round() / 255)  # lossless WebP
    with pytest.raises(tk.ConfigError, match="file name, but there are 2 images"):
        tk.save_images(torch.zeros(2, 3, 4, 4), tmp_path / "two.png")
    with pytest.raises(tk.ConfigError, match="format"):
        tk.save_images(image, tmp_path, format="gif")
    for names, match in ((["../evil"], "plain file names"), (["a", "a"], "unique"), (["a", "b"], "2 names for 1")):
        with pytest.raises(tk.ConfigError, match=match):
            tk.save_images(image if len(names) != 2 or names[0] != names[1] else torch.zeros(2, 3, 4, 4),
                           tmp_path, names=names)
    with pytest.raises(tk.ContractError):
        tk.save_images(torch.zeros(3, 4, 4), tmp_path)


def test_output_names_are_short_and_unique():
    assert output_names(["x/cat/1.jpg", "x/dog/1.jpg", "x/dog/2.jpg", "y/a.jpg", "y/a.png"]) == [
        "cat_1", "dog_1", "2", "a", "a-2"]


# --- the contract error names the fix -------------------------------------------------------------------------------

def test_wrong_image_size_error_names_the_helper():
    tok = tk.build("titok-tiny")
    with pytest.raises(tk.ContractError, match=r"got 64x64 \(\(H, W\) = \(64, 64\)\); resize and centre-crop with "
                                               r"tk.load_images\(paths, size=32\)"):
        tok.tokenize(torch.rand(1, 3, 64, 64))
    with pytest.raises(tk.ContractError, match=r"eval_transform\(32\)"):
        tok.tokenize(torch.rand(1, 3, 256, 385))  # not a multiple of the patch size either
    assert tok.tokenize(tk.load_images(BUNDLED / "chelsea.jpg", size=32)).shape == (1, 8)
