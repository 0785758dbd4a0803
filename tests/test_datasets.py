"""Datasets and the official preprocessing (``data/webdataset_reader.py``): folders, WebDataset shards, crops."""

import io
import tarfile

import PIL.Image
import pytest
import torch
from PIL import Image

import tokenkit as tk
from tokenkit.datasets import ImageDecodeError, eval_transform, train_transform
from tokenkit.datasets.image_folder import ImageFolder, ImageFolderConfig
from tokenkit.datasets.webdataset import (
    WebDataset,
    WebDatasetConfig,
    expand_braces,
    expand_shards,
)
from tokenkit.testing import check_dataset, check_part


def _png(path, w, h, seed=0):
    g = torch.Generator().manual_seed(seed)
    Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()).save(path)


def _encoded(w, h, fmt="JPEG", seed=0):
    buf = io.BytesIO()
    g = torch.Generator().manual_seed(seed)
    Image.fromarray(torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()).save(buf, format=fmt)
    return buf.getvalue()


def _shard(path, samples):
    """Official layout: ``000001.jpg`` + ``000001.cls`` members, in order."""
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _shards(tmp_path, n_shards=4, per_shard=3):
    idx = 0
    for s in range(n_shards):
        samples = []
        for _ in range(per_shard):
            samples.append((f"{idx:06d}", {"jpg": _encoded(12, 10, seed=idx), "cls": str(idx % 5).encode()}))
            idx += 1
        _shard(tmp_path / f"train-{s:04d}.tar", samples)
    return str(tmp_path / f"train-{{0000..{n_shards - 1:04d}}}.tar")


# --- transforms ---------------------------------------------------------------------------------------------------

def test_decompression_bomb_guard_untouched():
    assert PIL.Image.MAX_IMAGE_PIXELS is not None


def test_decompression_bomb_is_a_clear_error(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    _png(path, 64, 64)
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2*100: Pillow raises
    with pytest.raises(ImageDecodeError, match="big.png"):
        tk.datasets.decode_image(path)


def test_train_transform_is_reproducible_under_a_generator_and_random():
    image = Image.open(io.BytesIO(_encoded(40, 24)))
    t = train_transform(16)
    a = t(image, torch.Generator().manual_seed(3))
    b = t(image, torch.Generator().manual_seed(3))
    assert a.shape == (3, 16, 16) and a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b)
    outs = {t(image, torch.Generator().manual_seed(s)).sum().item() for s in range(8)}
    assert len(outs) > 1


def test_flip_and_crop_follow_the_generator():
    image = torch.rand(3, 16, 24)  # shorter edge already 16: no resize
    g = torch.Generator().manual_seed(5)
    top = int(torch.randint(0, 1, (1,), generator=g))
    left = int(torch.randint(0, 9, (1,), generator=g))
    flip = bool(torch.rand(1, generator=g) < 0.5)
    expected = image[:, top : top + 16, left : left + 16]
    expected = expected.flip(-1) if flip else expected
    assert torch.equal(train_transform(16)(image, torch.Generator().manual_seed(5)), expected)
    crop_only = train_transform(16, flip=False)(image, torch.Generator().manual_seed(5))
    assert torch.equal(crop_only, image[:, top : top + 16, left : left + 16])


def test_eval_transform_is_a_centre_crop_after_shorter_edge_resize():
    pil = Image.open(io.BytesIO(_encoded(30, 20, fmt="PNG")))
    out = eval_transform(10)(pil)
    resized = pil.resize((15, 10), Image.BICUBIC)  # int(10 * 30 / 20) = 15, torchvision's rounding
    left = round((15 - 10) / 2)
    ref = torch.from_numpy(__import__("numpy").asarray(resized.crop((left, 0, left + 10, 10)), dtype="float32") / 255)
    assert torch.allclose(out, ref.permute(2, 0, 1))
    assert torch.equal(out, eval_transform(10)(pil, torch.Generator().manual_seed(1)))


# --- image folder -------------------------------------------------------------------------------------------------

def test_image_folder_labels_from_sorted_sub_folders(tmp_path):
    for i, (cls, ext) in enumerate([("zebra", "png"), ("ant", "png"), ("ant/nested", "PNG")]):
        (tmp_path / cls).mkdir(parents=True, exist_ok=True)
        (tmp_path / cls / f"{i}.{ext}").write_bytes(_encoded(9, 7, fmt="PNG", seed=i))
    (tmp_path / "mole").mkdir()
    (tmp_path / "mole" / "3.txt").write_text("not an image")
    ds = tk.build_part("dataset", tk.Part("image-folder", root=str(tmp_path), size=6, labels=True))
    assert ds.classes == ["ant", "zebra"]  # "mole" only has a .txt
    assert [ds[i]["key"] for i in range(len(ds))] == ["ant/1", "ant/nested/2", "zebra/0"]
    assert [ds[i]["label"] for i in range(len(ds))] == [0, 0, 1]
    unlabelled = ImageFolder(ImageFolderConfig(root=str(tmp_path), size=6))
    assert {unlabelled[i]["label"] for i in range(len(unlabelled))} == {-1}


def test_image_folder_per_epoch_determinism_and_eval_mode(tmp_path):
    ds = ImageFolder(ImageFolderConfig.example(tmp_path))
    ds.set_epoch(2)
    a = [ds[i]["image"] for i in range(len(ds))]
    assert all(torch.equal(x, ds[i]["image"]) for i, x in enumerate(a))
    ds.eval()
    centre = ds[0]["image"]
    ds.set_epoch(7)
    assert torch.equal(ds[0]["image"], centre)


def test_image_folder_corrupt_file_raises_naming_it_or_skips(tmp_path):
    ImageFolderConfig.example(tmp_path)
    (tmp_path / "cat" / "001.png").write_bytes(b"not a png")
    ds = ImageFolder(ImageFolderConfig(root=str(tmp_path), size=8))
    with pytest.raises(ImageDecodeError, match="001.png"):
        ds[1]
    skipping = ImageFolder(ImageFolderConfig(root=str(tmp_path), size=8, on_error="skip"))
    with pytest.warns(RuntimeWarning, match="001.png"):
        assert skipping[1]["key"] == "dog/002"


def test_image_folder_errors(tmp_path):
    with pytest.raises(tk.ConfigError, match="not a directory"):
        ImageFolder(ImageFolderConfig(root=str(tmp_path / "missing")))
    with pytest.raises(tk.ConfigError, match="no images"):
        ImageFolder(ImageFolderConfig(root=str(tmp_path)))
    _png(tmp_path / "loose.png", 8, 8)
    with pytest.raises(tk.ConfigError, match="loose.png"):
        ImageFolder(ImageFolderConfig(root=str(tmp_path), labels=True))


# --- webdataset ---------------------------------------------------------------------------------------------------

def test_brace_expansion():
    assert expand_braces("train-{0000..0002}.tar") == ["train-0000.tar", "train-0001.tar", "train-0002.tar"]
    assert expand_braces("{8..10}") == ["8", "9", "10"]
    assert expand_braces("s{a,b}{0..1}") == ["sa0", "sa1", "sb0", "sb1"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_expand_shards_glob_and_missing(tmp_path):
    pattern = _shards(tmp_path, n_shards=3, per_shard=1)
    assert expand_shards(pattern) == expand_shards(str(tmp_path / "train-*.tar"))
    assert len(expand_shards([pattern])) == 3
    with pytest.raises(tk.ConfigError, match="nope"):
        expand_shards(str(tmp_path / "nope-{0..1}.tar"))


def test_webdataset_reads_the_official_layout(tmp_path):
    pattern = _shards(tmp_path, n_shards=2, per_shard=3)
    ds = tk.build_part("dataset", tk.Part("webdataset", shards=pattern, size=8, random_crop=False, flip=False))
    items = list(ds)
    assert [it["key"] for it in items] == [f"{i:06d}" for i in range(6)]
    assert [it["label"] for it in items] == [i % 5 for i in range(6)]
    assert all(it["image"].shape == (3, 8, 8) for it in items)


def test_webdataset_without_cls_is_unlabelled_and_png_works(tmp_path):
    _shard(tmp_path / "a.tar", [("x/000001", {"png": _encoded(9, 9, fmt="PNG")})])
    (item,) = list(WebDataset(WebDatasetConfig(shards=str(tmp_path / "a.tar"), size=8)))
    assert item["label"] == -1 and item["key"] == "x/000001"


def test_webdataset_shuffle_buffer_is_deterministic_per_epoch(tmp_path):
    pattern = _shards(tmp_path, n_shards=4, per_shard=4)
    ds = WebDataset(WebDatasetConfig(shards=pattern, size=8, shuffle=5, seed=1))
    keys = lambda: [it["key"] for it in ds]
    first = keys()
    assert first == keys() and sorted(first) == [f"{i:06d}" for i in range(16)]
    assert first != sorted(first)
    ds.set_epoch(1)
    assert keys() != first


def test_webdataset_splits_by_shard_across_workers(tmp_path):
    pattern = _shards(tmp_path, n_shards=4, per_shard=2)
    ds = WebDataset(WebDatasetConfig(shards=pattern, size=8))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    keys = [it["key"] for it in loader]
    assert sorted(keys) == [f"{i:06d}" for i in range(8)]  # every sample exactly once


def test_webdataset_worker_and_rank_split_simulated(tmp_path, monkeypatch):
    import tokenkit.datasets.webdataset as wds

    pattern = _shards(tmp_path, n_shards=4, per_shard=1)
    ds = WebDataset(WebDatasetConfig(shards=pattern, size=8))
    seen = []
    for worker in range(2):
        monkeypatch.setattr(wds, "get_worker_info", lambda w=worker: type("I", (), {"id": w, "num_workers": 2}))
        seen.append([it["key"] for it in ds])
    assert seen == [["000000", "000002"], ["000001", "000003"]]


def test_webdataset_resample_is_infinite_and_deterministic(tmp_path):
    import itertools

    pattern = _shards(tmp_path, n_shards=2, per_shard=2)
    ds = WebDataset(WebDatasetConfig(shards=pattern, size=8, resample=True))
    take = lambda: [it["key"] for it in itertools.islice(iter(ds), 12)]
    assert take() == take() and len(take()) == 12


def test_webdataset_corrupt_image_raises_naming_it_or_skips(tmp_path):
    _shard(tmp_path / "bad.tar", [("000000", {"jpg": _encoded(8, 8), "cls": b"1"}),
                                  ("000001", {"jpg": b"garbage", "cls": b"2"}),
                                  ("000002", {"jpg": _encoded(8, 8), "cls": b"3"})])
    ds = WebDataset(WebDatasetConfig(shards=str(tmp_path / "bad.tar"), size=8))
    with pytest.raises(ImageDecodeError, match=r"bad\.tar:000001"):
        list(ds)
    skipping = WebDataset(WebDatasetConfig(shards=str(tmp_path / "bad.tar"), size=8, on_error="skip"))
    with pytest.warns(RuntimeWarning, match="000001"):
        assert [it["label"] for it in skipping] == [1, 3]


# --- bundled ------------------------------------------------------------------------------------------------------

def test_bundled_is_deterministic_per_epoch_and_differs_across_epochs():
    ds = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=6, size=16, seed=3))
    ds.set_epoch(4)
    a = torch.stack([ds[i]["image"] for i in range(6)])
    again = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=6, size=16, seed=3))
    again.set_epoch(4)  # a resumed run
    assert torch.equal(a, torch.stack([again[i]["image"] for i in range(6)]))
    ds.set_epoch(5)
    assert not torch.equal(a, torch.stack([ds[i]["image"] for i in range(6)]))
    assert [ds[i]["label"] for i in range(6)] == list(range(6))


# --- contract -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bundled", "image-folder", "webdataset"])
def test_dataset_contract(name):
    check_part("dataset", name)


def test_check_dataset_catches_a_broken_part(tmp_path):
    class Broken(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"image": torch.rand(3, 8, 8) * 2, "label": 0, "key": str(i)}

    config = tk.datasets.bundled.BundledConfig(size=8)
    with pytest.raises(AssertionError, match=r"\[0, 1\]"):
        check_dataset(Broken(), config)


def test_transforms_match_torchvision_official_pipeline_bit_for_bit():
    from torchvision import transforms as T

    image = Image.open(io.BytesIO(_encoded(45, 30, fmt="PNG")))
    bicubic = T.InterpolationMode.BICUBIC
    official_eval = T.Compose([T.Resize(16, interpolation=bicubic, antialias=True), T.CenterCrop(16), T.ToTensor()])
    assert torch.equal(eval_transform(16)(image), official_eval(image))
    official_train = T.Compose([T.Resize(16, interpolation=bicubic, antialias=True), T.RandomCrop(16),
                                T.RandomHorizontalFlip(), T.ToTensor()])
    for seed in range(4):  # same draws from the global generator: crop (top, left), then flip
        torch.manual_seed(seed)
        expected = official_train(image)
        torch.manual_seed(seed)
        assert torch.equal(train_transform(16)(image), expected)
