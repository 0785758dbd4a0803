"""Pre-tokenization (images -> token ids for generator training) and the ``tokens`` dataset that reads it back."""

import copy
import json

import pytest
import torch

import tokenkit as tk
from tokenkit.cli import main
from tokenkit.datasets.tokens import TokensConfig
from tokenkit.testing import check_part
from tokenkit.train.pretokenize import pretokenize
from tokenkit.weights.io import read_safetensors_metadata


@pytest.fixture(scope="module")
def tok():
    return tk.build("titok-tiny")


def _images(count=4, size=32):
    return tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=count, size=size))


def _expected(tok, dataset, batch_size):
    """Direct tokenization in the documented order: per batch, the originals, then their flipped copies."""
    dataset.eval()
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    labels = torch.tensor([dataset[i]["label"] for i in range(len(dataset))])
    ids, out_labels = [], []
    for start in range(0, len(images), batch_size):
        chunk, lab = images[start : start + batch_size], labels[start : start + batch_size]
        ids += [tok.tokenize(chunk), tok.tokenize(chunk.flip(-1))]
        out_labels += [lab, lab]
    return torch.cat(ids), torch.cat(out_labels)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


# --- round trips --------------------------------------------------------------------------------------------------

def test_safetensors_round_trip_gives_the_ids_of_direct_tokenization(tok, tmp_path):
    dataset = _images(5)
    path = tmp_path / "tokens.safetensors"
    info = pretokenize(tok, dataset, path, batch_size=2, progress=False)
    assert info["count"] == 10 and info["num_tokens"] == 8 and info["codebook_size"] == 256
    assert info["path"] == str(path) and info["seconds"] >= 0
    assert dataset.training  # the dataset's mode is restored

    ds = tk.build_part("dataset", tk.Part("tokens", path=str(path)))
    expected_ids, expected_labels = _expected(tok, _images(5), batch_size=2)
    assert torch.equal(ds.tokens, expected_ids) and torch.equal(ds.labels, expected_labels)
    assert ds.num_tokens == 8 and ds.codebook_size == 256 and len(ds) == 10
    # batch 0: items 0, 1 then their flips; the flipped copy's key names its original
    assert [ds[i]["key"] for i in range(4)] == ["astronaut/0/0", "chelsea/0/1", "astronaut/0/0#flip",
                                                "chelsea/0/1#flip"]
    item = ds[2]
    assert item["tokens"].dtype == torch.int64 and item["tokens"].shape == (8,) and item["label"] == 0
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["tokens"].shape == (3, 8) and batch["label"].dtype == torch.int64

    meta = read_safetensors_metadata(path)
    assert meta["count"] == "10" and meta["num_tokens"] == "8" and meta["codebook_size"] == "256"
    assert meta["flip"] == "true" and tk.TokenizerSpec.from_json(meta["tokenizer"]) == tok.spec
    assert json.loads(meta["dataset"])["part"] == "bundled"


def test_without_flips(tok, tmp_path):
    dataset = _images(3)
    info = pretokenize(tok, dataset, tmp_path / "t.safetensors", flip=False, progress=False)
    ds = tk.build_part("dataset", tk.Part("tokens", path=info["path"]))
    dataset.eval()
    images = torch.stack([dataset[i]["image"] for i in range(3)])
    assert info["count"] == 3 and torch.equal(ds.tokens, tok.tokenize(images))
    assert read_safetensors_metadata(info["path"])["flip"] == "false"


def test_jsonl_round_trip_in_the_official_format(tok, tmp_path):
    path = tmp_path / "pretokenized.jsonl"
    info = pretokenize(tok, _images(3), path, batch_size=2, progress=False)
    lines = path.read_text().splitlines()
    assert len(lines) == info["count"] == 6
    record = json.loads(lines[0])
    assert set(record) == {"class_id", "tokens"} and len(record["tokens"]) == 8
    ds = tk.build_part("dataset", tk.Part("tokens", path=str(path)))
    expected_ids, expected_labels = _expected(tok, _images(3), batch_size=2)
    assert torch.equal(ds.tokens, expected_ids) and torch.equal(ds.labels, expected_labels)
    assert ds[5]["key"] == "5"  # JSONL has no keys: the row index


def test_jsonl_reads_the_official_nested_tokens_and_skips_blank_lines(tmp_path):
    path = tmp_path / "official.jsonl"
    path.write_text('{"class_id": 3, "tokens": [[1, 2, 3]]}\n\n{"class_id": 7, "tokens": [4, 5, 6], "key": "x", '
                    '"extra": 1}\n')
    ds = tk.build_part("dataset", tk.Part("tokens", path=str(path)))
    assert ds.tokens.tolist() == [[1, 2, 3], [4, 5, 6]] and ds.labels.tolist() == [3, 7]
    assert [ds[0]["key"], ds[1]["key"]] == ["0", "x"]
    assert ds.metadata == {} and ds.codebook_size is None


def test_tokens_dataset_passes_the_dataset_contract():
    check_part("dataset", "tokens")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # the JSONL variant too
        check_part("dataset", "tokens", config=TokensConfig.example(tmp, format="jsonl"))


# --- errors -------------------------------------------------------------------------------------------------------

def test_continuous_tokenizers_without_codes_and_multi_codebook_ones_are_refused(tmp_path):
    vae = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("gaussian", channels=8)))
    with pytest.raises(tk.ConfigError, match="continuous.*codes=True"):
        pretokenize(vae, _images(2), tmp_path / "t.safetensors", progress=False, codes=False)
    with pytest.raises(tk.ConfigError, match=r"\.safetensors only"):
        pretokenize(vae, _images(2), tmp_path / "t.jsonl", progress=False)
    rvq = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("rvq", dim=8, codebook_size=16, num_quantizers=2)))
    with pytest.raises(tk.ConfigError, match="2 ids per token"):
        pretokenize(rvq, _images(2), tmp_path / "t.safetensors", progress=False)
    assert _leftovers(tmp_path) == []


def test_unlabelled_items_are_refused_unless_allowed(tok, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    config = tk.datasets.image_folder.ImageFolderConfig.example(folder, size=32, labels=False)
    dataset = tk.build_part("dataset", tk.Part("image-folder", root=config.root, size=32))
    with pytest.raises(tk.ConfigError, match="unlabelled"):
        pretokenize(tok, dataset, tmp_path / "t.safetensors", progress=False)
    info = pretokenize(tok, dataset, tmp_path / "t.safetensors", progress=False, allow_unlabelled=True)
    ds = tk.build_part("dataset", tk.Part("tokens", path=info["path"]))
    assert info["count"] == 6 and set(ds.labels.tolist()) == {-1}


def test_bad_output_suffix_and_endless_dataset_are_refused(tok, tmp_path):
    with pytest.raises(tk.ConfigError, match=r"\.safetensors or \.jsonl"):
        pretokenize(tok, _images(2), tmp_path / "t.npz", progress=False)
    shards = tk.datasets.webdataset.WebDatasetConfig.example(tmp_path)
    endless = tk.build_part("dataset", tk.Part("webdataset", shards=shards.shards, size=32, resample=True))
    with pytest.raises(tk.ConfigError, match="resample"):
        pretokenize(tok, endless, tmp_path / "t.safetensors", progress=False)


def test_iterable_dataset_is_read_in_one_pass(tok, tmp_path):
    shards = tk.datasets.webdataset.WebDatasetConfig.example(tmp_path)
    dataset = tk.build_part("dataset", tk.Part("webdataset", shards=shards.shards, size=32))
    info = pretokenize(tok, dataset, tmp_path / "t.safetensors", batch_size=4, progress=False)
    ds = tk.build_part("dataset", tk.Part("tokens", path=info["path"]))
    assert info["count"] == 12 and ds.labels.tolist()[:4] == [0, 1, 2, 0]
    assert ds[4]["key"] == "000000#flip"


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(tk.ConfigError, match="does not exist"):
        tk.build_part("dataset", tk.Part("tokens", path=str(tmp_path / "nope.safetensors")))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(tk.ConfigError, match="bad.safetensors.*not a readable"):
        tk.build_part("dataset", tk.Part("tokens", path=str(bad)))


@pytest.mark.parametrize(("lines", "match"), [
    (['{"class_id": 0, "tokens": [1, 2]}', '{"class_id": 1, "tokens": [1, 2'], r"bad\.jsonl:2: not valid JSON"),
    (['{"class_id": 0, "tokens": [1, 2]}', '', '{"class_id": 1, "tokens": [1, 2, 3]}'],
     r"bad\.jsonl:3: 3 tokens, but earlier lines have 2"),
    (['{"class_id": 0, "tokens": [1, -2]}'], r"bad\.jsonl:1: negative token id -2"),
    (['{"class_id": 0, "tokens": [1, 2.5]}'], r"bad\.jsonl:1: tokens must be integers"),
    (['{"label": 0, "tokens": [1, 2]}'], r"bad\.jsonl:1: expected an object"),
    (['{"class_id": "cat", "tokens": [1, 2]}'], r"bad\.jsonl:1: .*class_id"),
    ([''], r"holds no items"),
])
def test_corrupt_jsonl_names_file_and_line(tmp_path, lines, match):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(tk.ConfigError, match=match):
        tk.build_part("dataset", tk.Part("tokens", path=str(path)))


def test_safetensors_contents_are_validated(tmp_path):
    from tokenkit.weights.io import save_safetensors

    def build(tensors, **options):
        save_safetensors(tensors, tmp_path / "t.safetensors")
        return tk.build_part("dataset", tk.Part("tokens", path=str(tmp_path / "t.safetensors"), **options))

    ok = {"tokens": torch.tensor([[1, 2], [3, 4]], dtype=torch.int32), "labels": torch.tensor([0, 1])}
    assert build(ok).tokens.dtype == torch.int64  # any integer dtype reads as int64
    assert build({"tokens": ok["tokens"]}).labels.tolist() == [-1, -1]  # no labels: unlabelled
    with pytest.raises(tk.ConfigError, match=r"item 1\): negative token id"):
        build({"tokens": torch.tensor([[1, 2], [3, -4]])})
    with pytest.raises(tk.ConfigError, match="must be integers"):
        build({"tokens": torch.rand(2, 2)})
    with pytest.raises(tk.ConfigError, match=r"must be \(M, N\)"):
        build({"tokens": torch.tensor([1, 2])})
    with pytest.raises(tk.ConfigError, match=r"shape \(2,\)"):
        build({"tokens": ok["tokens"], "labels": torch.tensor([0, 1, 2])})
    with pytest.raises(tk.ConfigError, match="no tensor 'tokens'"):
        build({"ids": ok["tokens"]})
    with pytest.raises(tk.ConfigError, match="outside the codebook"):
        build(ok, codebook_size=4)
    with pytest.raises(tk.ConfigError, match="num_tokens is 3"):
        build(ok, num_tokens=3)


# --- never a partial file ----------------------------------------------------------------------------------------

def _FailsAfterFirstBatch(tok):  # noqa: N802  (used like a class)
    """``tok``, whose second ``tokenize`` call raises."""
    original, calls = tok.tokenize, []

    def tokenize(images, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("device lost")
        return original(images, **kwargs)

    failing = copy.copy(tok)
    failing.tokenize = tokenize
    failing.calls_made = calls
    return failing


@pytest.mark.parametrize("suffix", [".safetensors", ".jsonl"])
def test_a_failure_midway_leaves_no_file_and_keeps_an_old_one(tok, tmp_path, suffix):
    out = tmp_path / f"tokens{suffix}"
    failing = _FailsAfterFirstBatch(tok)
    with pytest.raises(RuntimeError, match="device lost"):
        pretokenize(failing, _images(4), out, batch_size=2, progress=False)
    assert len(failing.calls_made) == 2 and _leftovers(tmp_path) == []
    out.write_text("old")
    with pytest.raises(RuntimeError, match="device lost"):
        pretokenize(_FailsAfterFirstBatch(tok), _images(4), out, batch_size=2, progress=False)
    assert out.read_text() == "old" and _leftovers(tmp_path) == [out.name]


def test_a_failure_while_writing_leaves_no_file(tok, tmp_path, monkeypatch):
    import safetensors.torch

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    monkeypatch.setattr("tokenkit.weights.io.save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        pretokenize(tok, _images(2), tmp_path / "t.safetensors", progress=False)
    assert _leftovers(tmp_path) == []


# --- command line -------------------------------------------------------------------------------------------------

def test_cli_pretokenize_bundled_and_image_folder(tmp_path, capsys):
    out = tmp_path / "tokens.safetensors"
    assert main(["pretokenize", "titok-tiny", "--out", str(out), "--batch-size", "4"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out}: 12 token sequences of 8 ids") and "\n" not in line
    ds = tk.build_part("dataset", tk.Part("tokens", path=str(out)))
    assert len(ds) == 12 and ds.labels.tolist()[:4] == [0, 1, 2, 3]

    folder = tmp_path / "images"
    folder.mkdir()
    tk.datasets.image_folder.ImageFolderConfig.example(folder)
    out = tmp_path / "folder.jsonl"
    assert main(["pretokenize", "titok-tiny", "--out", str(out), "--data", str(folder), "--no-flip"]) == 0
    assert "3 token sequences" in capsys.readouterr().out
    assert [json.loads(line)["class_id"] for line in out.read_text().splitlines()] == [0, 0, 1]


def test_cli_pretokenize_json_part_and_shards(tmp_path, capsys):
    out = tmp_path / "a.safetensors"
    data = json.dumps({"part": "bundled", "config": {"crops_per_epoch": 2}})
    assert main(["pretokenize", "titok-tiny", "--out", str(out), "--data", data]) == 0
    assert "4 token sequences" in capsys.readouterr().out
    shards = tk.datasets.webdataset.WebDatasetConfig.example(tmp_path)
    assert main(["pretokenize", "titok-tiny", "--out", str(out), "--data", shards.shards[0], "--no-flip"]) == 0
    assert "6 token sequences" in capsys.readouterr().out


def test_cli_pretokenize_errors(tmp_path, capsys):
    out = str(tmp_path / "t.safetensors")
    assert main(["pretokenize", "titok-tiny", "--out", out, "--data", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder, a .tar shard pattern or a JSON part" in capsys.readouterr().err
    assert main(["pretokenize", "titok-tiny", "--out", out, "--data", '{"part": "bundled"']) == 2
    assert "does not parse" in capsys.readouterr().err
    assert main(["pretokenize", "maskgit-tiny", "--out", out]) == 2
    assert "not a tokenizer" in capsys.readouterr().err
    assert main(["pretokenize", "titok-tiny", "--out", out, "--size", "16"]) == 2  # the tokenizer takes 32x32
    capsys.readouterr()
    assert _leftovers(tmp_path) == []


def test_cli_pretokenize_a_saved_tokenizer_folder(tmp_path):
    from tokenkit.cli import main

    tok = tk.build("titok-tiny", quantizer="fsq", patch_size=4)  # not the named composition: read from the folder
    tok.save_pretrained(tmp_path / "model")
    out = tmp_path / "ids.safetensors"
    assert main(["pretokenize", str(tmp_path / "model"), "--out", str(out)]) == 0
    dataset = tk.build_part("dataset", tk.Part("tokens", path=str(out)))
    assert len(dataset) == 12 and dataset.codebook_size == tok.codebook_size
