"""``tokenkit reconstruct`` / ``encode`` / ``decode`` end to end through ``tokenkit.cli.main``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

import tokenkit as tk
from tokenkit.cli import main

BUNDLED = Path(tk.data.__file__).parent / "images"


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    """A saved titok-tiny (fixed random weights) and the tokenizer itself."""
    torch.manual_seed(0)
    tok = tk.build("titok-tiny")
    folder = tmp_path_factory.mktemp("models") / "tiny"
    tok.save_pretrained(folder)
    return folder, tok


def _png(path, w=20, h=12, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)


def test_help_lists_the_image_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("reconstruct", "encode", "decode"))


# --- reconstruct -----------------------------------------------------------------------------------------------------

def test_reconstruct_a_folder_and_a_jpeg_with_random_weights(tmp_path, capsys):
    _png(tmp_path / "extra.png")
    out = tmp_path / "rec"
    assert main(["reconstruct", "titok-tiny", str(BUNDLED / "chelsea.jpg"), str(tmp_path / "extra.png"),
                 "--out", str(out), "--batch-size", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("random weights") == 1
    lines = captured.out.splitlines()
    assert lines[0] == "| image | PSNR (dB) | LPIPS |" and lines[2].startswith("| chelsea | ")
    assert lines[3].startswith("| extra | ") and lines[4].startswith("| mean | ")
    assert sorted(p.name for p in out.iterdir()) == ["chelsea.png", "extra.png", "metrics.json"]
    side_by_side = tk.load_images(out / "chelsea.png")
    assert side_by_side.shape == (1, 3, 32, 64)  # original | reconstruction
    assert torch.equal(side_by_side[..., :32], tk.load_images(BUNDLED / "chelsea.jpg", size=32))
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["name"] for r in metrics["images"]] == ["chelsea", "extra"] and metrics["image_size"] == 32
    reconstruction = side_by_side[..., 32:]
    expected = tk.metrics.psnr(reconstruction, side_by_side[..., :32]).item()
    assert metrics["images"][0]["psnr"] == pytest.approx(expected, abs=1e-4)
    assert metrics["mean"]["psnr"] == pytest.approx(sum(r["psnr"] for r in metrics["images"]) / 2)
    from tokenkit.losses.lpips import vgg16_weights_path

    if not vgg16_weights_path().is_file():  # offline: LPIPS is n/a with a one-line reason, not a failure
        assert "| n/a |" in lines[2] and lines[5].startswith("LPIPS: n/a (needs the torchvision VGG16 weights")
        assert metrics["mean"]["lpips"] is None and "VGG16" in metrics["lpips_note"]


def test_reconstruct_reports_lpips_when_the_metric_is_available(tmp_path, capsys, monkeypatch, saved_tiny):
    weights = tmp_path / "vgg16.pth"
    weights.write_bytes(b"")
    monkeypatch.setattr("tokenkit.losses.lpips.vgg16_weights_path", lambda: weights)
    monkeypatch.setattr("tokenkit.metrics.lpips", lambda images, reference: torch.full((len(images),), 0.25))
    folder, _ = saved_tiny
    assert main(["reconstruct", str(folder), str(BUNDLED), "--out", str(tmp_path / "rec")]) == 0
    captured = capsys.readouterr()
    assert "random weights" not in captured.err  # a saved model has its weights
    assert "| astronaut | " in captured.out and "| 0.2500 |" in captured.out and "n/a" not in captured.out
    metrics = json.loads((tmp_path / "rec" / "metrics.json").read_text())
    assert metrics["mean"]["lpips"] == pytest.approx(0.25) and metrics["weights"] == str(folder)
    assert len(metrics["images"]) == 6


def test_reconstruct_a_continuous_tokenizer_and_no_lpips(tmp_path, capsys):
    vae = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("gaussian", channels=4)))
    vae.save_pretrained(tmp_path / "vae")
    assert main(["reconstruct", str(tmp_path / "vae"), str(BUNDLED / "rocket.jpg"), "--out",
                 str(tmp_path / "rec"), "--no-lpips"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "| image | PSNR (dB) |" and "LPIPS" not in out
    with torch.no_grad():
        images = tk.load_images(BUNDLED / "rocket.jpg", size=32)
        expected = vae.decode(vae.encode(images).codes).clamp(0, 1)
    written = tk.load_images(tmp_path / "rec" / "rocket.png")[..., 32:]
    assert torch.allclose(written, expected, atol=0.5 / 255 + 1e-6)
    assert main(["encode", str(tmp_path / "vae"), str(BUNDLED / "rocket.jpg"), "--out",
                 str(tmp_path / "ids.safetensors")]) == 2
    assert "continuous" in capsys.readouterr().err and not (tmp_path / "ids.safetensors").exists()


def test_reconstruct_user_errors_exit_2(tmp_path, capsys):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    _png(tmp_path / "good.png")
    base = ["reconstruct", "titok-tiny", str(tmp_path), "--out", str(tmp_path / "rec"), "--no-lpips"]
    assert main(base) == 2
    err = capsys.readouterr().err.splitlines()
    assert "random weights" in err[0] and len(err) == 2
    assert err[1].startswith("tokenkit: error: cannot decode image") and "broken.jpg" in err[1]
    assert main([*base, "--skip-unreadable"]) == 0
    captured = capsys.readouterr()
    assert "skipping" in captured.err and "broken.jpg" in captured.err and "| good |" in captured.out
    assert main([*base, "--skip-unreadable"]) == 2  # the outputs exist now
    err = capsys.readouterr().err
    assert "already exists" in err and "pass --overwrite" in err
    assert main([*base, "--skip-unreadable", "--overwrite"]) == 0  # rec/ is inside the input folder: not read
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["good.png", "metrics.json"]
    capsys.readouterr()
    assert main([*base, "--skip-unreadable", "--overwrite", "--size", "64"]) == 2
    assert "takes 32x32 images" in capsys.readouterr().err
    assert main(["reconstruct", "titok-tiny", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["reconstruct", "maskgit-tiny", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "is not a tokenizer" in capsys.readouterr().err


def test_reconstruct_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "rec"
    out.mkdir()
    (out / "coffee.png").write_bytes(b"mine")
    assert main(["reconstruct", "titok-tiny", str(BUNDLED / "coffee.jpg"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tokenkit: error: ") and "coffee.png already exists; pass --overwrite" in err
    assert (out / "coffee.png").read_bytes() == b"mine" and not (out / "metrics.json").exists()


# --- encode and decode -----------------------------------------------------------------------------------------------

def test_encode_then_decode_round_trip(tmp_path, capsys, saved_tiny):
    folder, tok = saved_tiny
    ids_file = tmp_path / "ids.safetensors"
    inputs = [str(BUNDLED / "hubble_deep_field.jpg"), str(BUNDLED)]
    assert main(["encode", str(folder), *inputs, "--out", str(ids_file), "--batch-size", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    with safe_open(str(ids_file), framework="pt") as f:
        ids, meta = f.get_tensor("ids"), f.metadata()
    names = json.loads(meta["names"])
    assert names == ["hubble_deep_field", "astronaut", "chelsea", "coffee", "hubble_deep_field-2", "retina", "rocket"]
    assert ids.dtype == torch.int64 and ids.shape == (7, 8)
    paths = tk.images.list_images(inputs)
    assert torch.equal(ids, tok.tokenize(tk.load_images(paths, size=32)))
    assert tk.TokenizerSpec.from_json(meta["tokenizer"]) == tok.spec
    assert meta["weights"] == str(folder) and meta["format"] == "tokenkit.ids"
    from tokenkit.cli import state_dict_sha256

    assert meta["state_dict_sha256"] == state_dict_sha256(tok) and len(meta["state_dict_sha256"]) == 64

    out = tmp_path / "decoded"
    assert main(["decode", str(ids_file), "--out", str(out), "--weights", str(folder)]) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err and "wrote 7 images" in captured.out
    assert sorted(p.stem for p in out.iterdir()) == sorted(names)
    decoded = tk.load_images([out / f"{n}.png" for n in names])
    assert torch.equal(decoded, (tok.detokenize(ids) * 255).round() / 255)

    # --model instead of the stored spec: the same images
    assert main(["decode", str(ids_file), "--out", str(tmp_path / "again"), "--model", str(folder)]) == 0
    assert torch.equal(tk.load_images([tmp_path / "again" / f"{n}.png" for n in names]), decoded)


def test_decode_warns_about_random_or_other_weights(tmp_path, capsys, saved_tiny):
    folder, _ = saved_tiny
    ids_file = tmp_path / "ids.safetensors"
    assert main(["encode", str(folder), str(BUNDLED / "coffee.jpg"), "--out", str(ids_file)]) == 0
    capsys.readouterr()
    assert main(["decode", str(ids_file), "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "random weights" in err and f"--weights {folder}" in err
    assert (tmp_path / "a" / "coffee.png").is_file()
    other = tmp_path / "other"
    tk.build("titok-tiny").save_pretrained(other)
    assert main(["decode", str(ids_file), "--out", str(tmp_path / "b"), "--weights", str(other)]) == 0
    assert "differ from the ones the ids were encoded with" in capsys.readouterr().err


def test_encode_and_decode_multi_codebook_ids(tmp_path, capsys):
    spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("rvq", dim=8, codebook_size=16, num_quantizers=2))
    tok = tk.build(spec)
    tok.save_pretrained(tmp_path / "rvq")
    ids_file = tmp_path / "ids.safetensors"
    assert main(["encode", str(tmp_path / "rvq"), str(BUNDLED / "retina.jpg"), "--out",
                 str(ids_file)]) == 0
    with safe_open(str(ids_file), framework="pt") as f:
        assert f.get_tensor("ids").shape == (1, 8, 2)
    assert main(["decode", str(ids_file), "--out", str(tmp_path / "out"), "--weights", str(tmp_path / "rvq")]) == 0
    assert tk.load_images(tmp_path / "out" / "retina.png").shape == (1, 3, 32, 32)


def test_encode_and_decode_user_errors_exit_2(tmp_path, capsys):
    assert main(["encode", "titok-tiny", str(BUNDLED), "--out", str(tmp_path / "ids.bin")]) == 2
    assert ".safetensors" in capsys.readouterr().err
    ids_file = tmp_path / "ids.safetensors"
    assert main(["encode", "titok-tiny", str(BUNDLED / "coffee.jpg"), "--out", str(ids_file)]) == 0
    assert main(["encode", "titok-tiny", str(BUNDLED / "coffee.jpg"), "--out", str(ids_file)]) == 2
    assert "already exists" in capsys.readouterr().err
    (tmp_path / "decoded").mkdir()
    (tmp_path / "decoded" / "coffee.png").write_bytes(b"mine")
    assert main(["decode", str(ids_file), "--out", str(tmp_path / "decoded")]) == 2
    assert "coffee.png already exists" in capsys.readouterr().err
    tk.build("titok-tiny", num_tokens=16).save_pretrained(tmp_path / "t16")
    assert main(["decode", str(ids_file), "--out", str(tmp_path / "d2"), "--model", str(tmp_path / "t16")]) == 2
    assert "tokenkit: error: indices must have shape (B, 16)" in capsys.readouterr().err
    tk.weights.io.save_safetensors({"tokens": torch.zeros(1, 8, dtype=torch.int64)}, tmp_path / "other.safetensors")
    assert main(["decode", str(tmp_path / "other.safetensors"), "--out", str(tmp_path / "d3")]) == 2
    assert "holds no 'ids' tensor" in capsys.readouterr().err
    tk.weights.io.save_safetensors({"ids": torch.zeros(1, 8, dtype=torch.int64)}, tmp_path / "bare.safetensors")
    assert main(["decode", str(tmp_path / "bare.safetensors"), "--out", str(tmp_path / "d4")]) == 2
    assert "pass --model" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "bare.safetensors"), "--out", str(tmp_path / "d4"),
                 "--model", "titok-tiny"]) == 0
    assert (tmp_path / "d4" / "00000.png").is_file()
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    assert main(["decode", str(tmp_path / "junk.safetensors"), "--out", str(tmp_path / "d5")]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err


def test_decode_ignores_unsafe_stored_names(tmp_path, capsys):
    tok = tk.build("titok-tiny")
    tk.weights.io.save_safetensors({"ids": torch.zeros(2, 8, dtype=torch.int64)}, tmp_path / "ids.safetensors",
                                   {"names": json.dumps(["../escape", "ok"]), "tokenizer": tok.spec.to_json()})
    assert main(["decode", str(tmp_path / "ids.safetensors"), "--out", str(tmp_path / "out")]) == 0
    assert "unusable image names" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.png", "00001.png"]
    assert not (tmp_path / "escape.png").exists()
