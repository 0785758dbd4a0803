"""``tk.build(name, pretrained=True)``: each reference model's recorded release (``tk.WeightSource``), fetched
from a local fake Hub cache; sha256 checks; ``list_models(pretrained=True)`` and ``tokenkit list --pretrained``;
offline failures that are fast and name every file needed."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
import torch
from _helpers import tiny_spec
from safetensors.torch import save_file

import tokenkit as tk
from tokenkit.cli import main
from tokenkit.errors import ConfigError, RegistryError, WeightsError
from tokenkit.models.rar import REFERENCE_RAR, rar
from tokenkit.models.titok import REFERENCE_MODELS, titok
from tokenkit.registry import get_model
from tokenkit.weights import official

COMMIT = "0123456789abcdef0123456789abcdef01234567"

OFFICIAL = {
    **{name: (f"yucornetto/tokenizer_{repo}_imagenet", "model.safetensors", "config.json") for name, repo in {
        "titok-l32": "titok_l32", "titok-b64": "titok_b64", "titok-s128": "titok_s128",
        "titok-bl64-vq8k": "titok_bl64_vq8k", "titok-bl128-vq8k": "titok_bl128_vq8k",
        "titok-sl256-vq8k": "titok_sl256_vq8k", "titok-ll32-vae": "titok_ll32_vae_c16",
        "titok-bl64-vae": "titok_bl64_vae_c16", "titok-bl128-vae": "titok_bl128_vae_c16"}.items()},
    **{f"maskgit-titok-{s}": (f"yucornetto/generator_titok_{s}_imagenet", "model.safetensors", "config.json")
       for s in ("l32", "b64", "s128")},
    "maskgit-vqgan": ("fun-research/TiTok", "maskgit-vqgan-imagenet-f16-256.bin", None),
    **{f"rar-{s}": ("yucornetto/RAR", f"rar_{s}.bin", None) for s in ("b", "l", "xl", "xxl")},
    **{f"onedpiece-{s.lower()}256": (f"turing-motors/One-D-Piece-{s}-256", "pytorch_model.bin", None) for s in "LBS"},
    **{f"tatitok-{v}": (f"turkeyju/tokenizer_tatitok_{v.replace('-', '_')}", "model.safetensors", "config.json")
       for v in ("bl32-vq", "bl64-vq", "bl128-vq", "bl32-vae", "bl64-vae", "sl128-vae")},
    **{f"maskgen-{v}-{s}": (f"turkeyju/generator_maskgen_{v}_{s}", "model.safetensors", "config.json")
       for v in ("vq", "kl") for s in ("l", "xl")},
}
"""Every official release (bytedance/1d-tokenizer READMEs, One-D-Piece's README): name -> (repo, weights, config)."""


def snapshot(cache: Path, repo_id: str, revision: str = "main") -> Path:
    """The snapshot folder of ``repo_id`` in a Hub cache laid out as huggingface_hub lays it out
    (``models--owner--name/refs/<revision>`` naming the commit, ``snapshots/<commit>/<files>``)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """``HF_HUB_OFFLINE=1`` and an empty default Hub cache (huggingface_hub's, moved to a temporary folder)."""
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    tk.list_models()  # the registry loaded before anything is timed
    return cache


@pytest.fixture
def no_network(monkeypatch):
    """The Hub unreachable (the one probe request fails as without network); counts the probes."""
    import huggingface_hub
    from huggingface_hub import constants

    probes = []

    def probe(url, **_):
        probes.append(url)
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", probe)
    return probes


def _assert_names_every_file(text: str, repo_id: str, files: list[str], cache: Path) -> None:
    assert repo_id in text
    for name in files:
        assert f"https://huggingface.co/{repo_id}/resolve/main/{name}" in text
    assert str(cache / f"models--{repo_id.replace('/', '--')}") in text  # where the Hub cache wants them
    assert "pretrained='/path/to/" in text  # or a local folder / file


# ---------------------------------------------------------------- the recorded releases


def test_every_official_model_records_its_release():
    assert tk.list_models(pretrained=True) == sorted(OFFICIAL, key=lambda n: tk.registry.natural_key(n))
    for name, (repo_id, filename, config) in OFFICIAL.items():
        source = get_model(name).weights
        assert (source.repo_id, source.filename, source.config) == (repo_id, filename, config), name
        assert source.sha256 is None and source.revision is None  # no hash is known offline; none is invented
    for name in ("titok", "titok-tiny", "maskgit-tiny", "rar-tiny", "tatitok-tiny", "maskgen-vq-tiny",
                 "maskgen-kl-tiny"):
        assert get_model(name).weights is None and name not in tk.list_models(pretrained=True)
    assert tk.list_models("rar-*", pretrained=True) == ["rar-b", "rar-l", "rar-xl", "rar-xxl"]


def test_weight_source_checks_its_fields():
    source = tk.WeightSource("me/repo", "w.bin", sha256="AB" * 32, revision="v1", config="config.json")
    assert source.sha256 == "ab" * 32 and source.files == ("config.json", "w.bin")
    assert source.url("config.json") == "https://huggingface.co/me/repo/resolve/v1/config.json"
    for bad in (dict(repo_id="repo"), dict(filename=""), dict(sha256="abc"), dict(revision="")):
        with pytest.raises(ConfigError):
            tk.WeightSource(**{"repo_id": "me/repo", "filename": "w.bin", **bad})
    with pytest.raises(RegistryError, match="must be a tk.WeightSource"):
        tk.register_model("test-bad-weights", titok, weights="me/repo/w.bin")


def test_pretrained_true_needs_a_name_with_a_release():
    with pytest.raises(ConfigError, match="no released weights") as info:
        tk.build("titok-tiny", pretrained=True)
    assert "titok-l32" in str(info.value) and "rar-b" in str(info.value)  # the names that have weights
    with pytest.raises(ConfigError, match="a spec has none"):
        tk.build(tk.spec("titok-tiny"), pretrained=True)
    with pytest.raises(ConfigError, match="apply to pretrained weights"):
        tk.build("titok-tiny", local_files_only=True)
    assert isinstance(tk.build("titok-tiny", pretrained=False), tk.Tokenizer)  # False: random weights
    with pytest.raises(ConfigError, match="no released weights"):
        tk.from_pretrained("titok-tiny")


# ---------------------------------------------------------------- loading from a fake Hub cache


def test_titok_l32_loads_its_release_from_the_hub_cache(offline):
    """The real ``titok-l32`` source; the cache holds a tiny model of its composition, official layout."""
    knobs = dict(image_size=32, patch_size=8, num_tokens=4, encoder_size="tiny", decoder_size="tiny",
                 pixel_decoder=tiny_spec("titok-l32").pixel_decoder)
    reference = tk.build("titok-l32", **knobs)
    folder = snapshot(offline, "yucornetto/tokenizer_titok_l32_imagenet")
    (folder / "config.json").write_text("{}")  # fetched with the weights; the name gives the composition
    save_file(official.TITOK.to_foreign(reference.state_dict()), folder / "model.safetensors")
    loaded = tk.build("titok-l32", pretrained=True, **knobs)
    assert loaded.spec == reference.spec and not loaded.training
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_rar_loads_a_bare_weight_file_and_from_pretrained_takes_the_name(offline):
    knobs = dict(width=16, depth=2, heads=2, mlp_dim=32, codebook_size=64, num_tokens=4, num_classes=5)
    reference = tk.build("rar-b", **knobs)
    torch.save(reference.state_dict(), snapshot(offline, "yucornetto/RAR") / "rar_b.bin")
    loaded = tk.build("rar-b", pretrained=True, **knobs)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in reference.state_dict().items())
    with pytest.raises(WeightsError, match="hf://yucornetto/RAR/rar_b.bin: the weights do not fit"):  # 261M vs tiny
        tk.from_pretrained("rar-b")


@pytest.fixture
def tiny_release(tmp_path):
    """A temporary model ``test-tiny-release`` whose release is ``tokenkit-test/tiny`` (config + safetensors),
    saved in a fake Hub cache (returned with the saved model)."""
    cache = tmp_path / "cache"
    model = tk.build("titok-tiny")
    tk.save_pretrained(model, snapshot(cache, "tokenkit-test/tiny"))
    digest = hashlib.sha256((snapshot(cache, "tokenkit-test/tiny") / "model.safetensors").read_bytes()).hexdigest()
    names = []

    def register(name: str, **source) -> str:
        source = {"repo_id": "tokenkit-test/tiny", "filename": "model.safetensors", "config": "config.json", **source}
        tk.register_model(name, titok, weights=tk.WeightSource(**source), **REFERENCE_MODELS["titok-tiny"])
        names.append(name)
        return name

    yield cache, model, digest, register
    for name in names:
        tk.unregister_model(name)


def test_a_registered_release_loads_by_name(tiny_release, monkeypatch):
    cache, model, _, register = tiny_release
    name = register("test-tiny-release")
    assert name in tk.list_models(pretrained=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for loaded in (tk.build(name, pretrained=True, cache_dir=cache), tk.from_pretrained(name, cache_dir=cache)):
        assert loaded.spec == model.spec
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    monkeypatch.chdir(cache.parent)  # a local folder of the model's name comes first
    other = tk.build("titok-tiny")
    tk.save_pretrained(other, cache.parent / name)
    loaded = tk.from_pretrained(name)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in other.state_dict().items())


def test_sha256_is_checked_when_recorded(tiny_release, monkeypatch):
    cache, model, digest, register = tiny_release
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    good = register("test-tiny-good-hash", sha256=digest.upper())
    assert tk.build(good, pretrained=True, cache_dir=cache).spec == model.spec
    bad = register("test-tiny-bad-hash", sha256="0" * 64)
    with pytest.raises(WeightsError) as info:
        tk.build(bad, pretrained=True, cache_dir=cache)
    text = str(info.value)
    assert digest in text and "0" * 64 in text and "model.safetensors" in text and "tokenkit-test/tiny" in text


def test_the_other_hub_weight_name_is_read_as_from_pretrained_reads_it(tiny_release, monkeypatch):
    """A mixin repo holding ``pytorch_model.bin`` instead of ``model.safetensors`` (no sha256 recorded)."""
    cache, model, digest, register = tiny_release
    folder = snapshot(cache, "tokenkit-test/tiny")
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = tk.build(register("test-tiny-bin"), pretrained=True, cache_dir=cache)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(WeightsError, match="model.safetensors"):  # with a sha256, only the recorded file
        tk.build(register("test-tiny-bin-hash", sha256=digest), pretrained=True, cache_dir=cache)


def test_a_reachable_hub_downloads_with_the_hub_options(tiny_release, monkeypatch):
    """Online: the probe answers, then ``hf_hub_download`` fetches each file with the options given."""
    import huggingface_hub
    from huggingface_hub import constants

    cache, _, _, register = tiny_release
    remote = snapshot(cache, "tokenkit-test/tiny")
    calls, probes = [], []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url, **_: probes.append(url))

    def download(repo_id, filename, **options):
        calls.append((repo_id, filename, options))
        return str(remote / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    name = register("test-tiny-online", revision="v2")
    tmp_cache = cache.parent / "elsewhere"
    tk.build(name, pretrained=True, cache_dir=tmp_cache, token="hf_x")
    assert [c[1] for c in calls] == ["config.json", "model.safetensors"] and len(probes) == 2
    assert all(c[2] == dict(revision="v2", cache_dir=tmp_cache, token="hf_x", local_files_only=False)
               for c in calls)
    assert "/resolve/v2/" in probes[0]
    calls.clear()
    tk.build(name, pretrained=True, revision="v3")  # the caller's revision overrides the recorded one
    assert {c[2]["revision"] for c in calls} == {"v3"}


# ---------------------------------------------------------------- offline: fast, every file named


def test_offline_fails_fast_naming_every_file(offline):
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        tk.build("titok-l32", pretrained=True)
    elapsed = time.perf_counter() - start
    assert elapsed < 5, elapsed
    text = str(info.value)
    _assert_names_every_file(text, "yucornetto/tokenizer_titok_l32_imagenet", ["config.json", "model.safetensors"],
                             offline)
    assert text.startswith("titok-l32: ") and "HF_HUB_OFFLINE=1 is set" in text
    assert "hf download yucornetto/tokenizer_titok_l32_imagenet config.json model.safetensors" in text


def test_local_files_only_fails_fast_without_touching_the_network(monkeypatch, tmp_path, no_network):
    tk.list_models()
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        tk.build("rar-xl", pretrained=True, cache_dir=tmp_path, local_files_only=True)
    assert time.perf_counter() - start < 5
    assert no_network == []  # cache only: not even the probe
    _assert_names_every_file(str(info.value), "yucornetto/RAR", ["rar_xl.bin"], tmp_path)
    assert "local_files_only=True" in str(info.value) and "pretrained='/path/to/rar_xl.bin'" in str(info.value)


def test_no_network_fails_fast_after_one_probe(monkeypatch, tmp_path, no_network):
    """Without HF_HUB_OFFLINE: one request without retries, then the cache only (huggingface_hub alone retries
    for about 25 s)."""
    import huggingface_hub

    downloads = []
    real = huggingface_hub.hf_hub_download

    def download(*args, **options):
        downloads.append(options["local_files_only"])
        return real(*args, **options)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    tk.list_models()
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        tk.build("maskgit-titok-s128", pretrained=True, cache_dir=tmp_path)
    assert time.perf_counter() - start < 5
    assert len(no_network) == 1 and downloads and all(downloads)  # after the failed probe: cache only
    text = str(info.value)
    _assert_names_every_file(text, "yucornetto/generator_titok_s128_imagenet", ["config.json", "model.safetensors"],
                             tmp_path)
    assert "cannot be reached" in text


def test_a_repo_id_names_its_config_and_weights_once_each(offline):
    """The message for ``owner/name`` used to name config.json twice and never the weights file."""
    with pytest.raises(WeightsError) as info:
        tk.from_pretrained("yucornetto/tokenizer_titok_b64_imagenet")
    text = str(info.value)
    _assert_names_every_file(text, "yucornetto/tokenizer_titok_b64_imagenet", ["config.json", "model.safetensors"],
                             offline)
    assert "(and config.json when it exists)" not in text and "pytorch_model.bin" in text  # the alternative name


# ---------------------------------------------------------------- the CLI


def test_cli_lists_the_models_with_weights(capsys):
    assert main(["list", "--pretrained"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == tk.list_models(pretrained=True)
    by_name = {row[0]: row[1:] for row in rows}
    assert by_name["titok-l32"] == ["yucornetto/tokenizer_titok_l32_imagenet/model.safetensors", "(+", "config.json)"]
    assert by_name["rar-b"] == ["yucornetto/RAR/rar_b.bin"]
    assert by_name["maskgit-vqgan"] == ["fun-research/TiTok/maskgit-vqgan-imagenet-f16-256.bin"]
    assert main(["list", "--pretrained", "maskgit-*"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "maskgit-titok-b64", "maskgit-titok-l32", "maskgit-titok-s128", "maskgit-vqgan"]
    assert main(["list"]) == 0  # without --pretrained: the names alone, as before
    assert capsys.readouterr().out.split("\n")[:-1] == tk.list_models()
    assert main(["list", "--pretrained", "--parts", "encoder"]) == 2
    assert "--pretrained" in capsys.readouterr().err


def test_registering_with_a_release_is_listed(capsys):
    tk.register_model("test-listed-release", rar, weights=tk.WeightSource("me/rar", "tiny.bin", sha256="ab" * 32),
                      **REFERENCE_RAR["rar-tiny"])
    try:
        assert main(["list", "--pretrained", "test-*"]) == 0
        assert capsys.readouterr().out.split() == ["test-listed-release", "me/rar/tiny.bin", "(sha256", "ab" * 32 + ")"]
    finally:
        tk.unregister_model("test-listed-release")
