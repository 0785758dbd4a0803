"""Weights: official layouts, safe loading, save/from_pretrained, the Hub."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from _helpers import official_keys, tiny_spec

import tokenkit as tk
from tokenkit.errors import WeightsError
from tokenkit.weights import official
from tokenkit.models.official_config import spec_from_official_config
from tokenkit.weights.model_files import SPEC_METADATA_KEY

KEY_LISTINGS = {
    "titok-l32": "l32", "titok-b64": "b64", "titok-s128": "s128", "titok-bl64-vq8k": "bl64_vq8k",
    "titok-bl128-vq8k": "bl128_vq8k", "titok-sl256-vq8k": "sl256_vq8k", "titok-ll32-vae": "ll32_vae_c16",
    "titok-bl64-vae": "bl64_vae_c16", "titok-bl128-vae": "bl128_vae_c16",
}


def _shapes(state_dict):
    return {k: tuple(v.shape) for k, v in state_dict.items()}


def _images(spec, batch=2):
    size = spec.resolve()["encoder"].image_size
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))


# ---- official layouts ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(KEY_LISTINGS))
def test_official_key_coverage(name):
    """tokenkit's parameters map one to one onto the released checkpoint's keys and shapes."""
    tok = tk.build(name, device="meta")
    assert _shapes(official.TITOK.to_foreign(tok.state_dict())) == official_keys(KEY_LISTINGS[name])


def test_official_key_coverage_stage1_and_vqgan():
    stage1 = tk.build("titok-s128", pixel_decoder=False, device="meta")
    assert _shapes(official.TITOK.to_foreign(stage1.state_dict())) == official_keys("s128_stage1")
    vqgan = tk.build("maskgit-vqgan", device="meta")
    assert _shapes(official.MASKGIT_VQGAN.to_foreign(vqgan.state_dict())) == official_keys("maskgit_vqgan")


def _keymap(name):
    if name.startswith("rar-"):
        return official.RAR
    if name.startswith("maskgen-vq"):
        return official.MASKGEN_VQ
    if name.startswith("maskgen-kl"):
        return official.MASKGEN_KL
    if name == "maskgit-vqgan":
        return official.MASKGIT_VQGAN
    if name.startswith("maskgit-"):
        return official.UVITBERT if tk.spec(name).generator.config["backbone"].name == "uvit" else official.IMAGEBERT
    return official.TITOK


def _outputs(model, spec):
    """Deterministic outputs to compare two models: reconstructions or generator logits."""
    if isinstance(spec, tk.GeneratorSpec) and model.conditioning == "text":
        return model.generate(["a photo of a jay", "a red rocket"], generator=torch.Generator().manual_seed(0))
    if isinstance(spec, tk.GeneratorSpec):
        gen = torch.Generator().manual_seed(0)
        indices = torch.randint(0, model.mask_id + 1, (2, model.num_tokens), generator=gen)
        labels = torch.randint(0, model.num_classes, (2,), generator=gen)
        return model(indices, labels)
    text = ["a photo of a jay", "a red rocket"] if model.takes_text else None
    return model(_images(spec), text=text).images


@pytest.mark.parametrize(("name", "listing"), [("maskgit-titok-l32", "generator_l32_ImageBert"),
                                               ("maskgit-titok-b64", "generator_b64_ImageBert"),
                                               ("maskgit-titok-s128", "generator_s128_UViTBert")])
def test_official_generator_key_coverage(name, listing):
    gen = tk.build(name, device="meta")
    assert _shapes(_keymap(name).to_foreign(gen.state_dict())) == official_keys(listing)


@pytest.mark.parametrize("name", tk.list_models())
def test_converter_round_trip(name, tmp_path):
    """tokenkit -> official layout -> tokenkit is exact, and a model loaded from the official layout
    gives the same outputs."""
    torch.manual_seed(0)
    spec = tiny_spec(name)
    model = tk.build(spec)
    foreign = _keymap(name).to_foreign(model.state_dict())
    layout = {official.TITOK: "titok", official.MASKGIT_VQGAN: "maskgit-vqgan", official.IMAGEBERT: "imagebert",
              official.UVITBERT: "uvitbert", official.RAR: "rar", official.MASKGEN_VQ: "maskgen-vq",
              official.MASKGEN_KL: "maskgen-kl"}[_keymap(name)]
    if layout == "titok" and spec.text_encoder is not None:
        layout = "tatitok"
    assert official.detect_layout(foreign) == layout
    back = official.to_tokenkit(foreign)
    assert back.keys() == model.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in model.state_dict().items())
    path = tmp_path / "official.bin"
    extra = "model.embeddings.position_ids" if layout == "imagebert" else "quantize.embed_prob"
    torch.save({**foreign, extra: torch.ones(3)}, path)  # plus a known harmless extra
    loaded = tk.build(spec, pretrained=path)
    assert torch.equal(_outputs(model, spec), _outputs(loaded, spec))


# ---- official config.json --------------------------------------------------------------------------------------
def _official_config(**vq):
    return {"experiment": {"tokenizer_checkpoint": "x.bin"}, "model": {"vq_model": vq},
            "dataset": {"preprocessing": {"crop_size": 256}}}


LEGACY = dict(codebook_size=4096, token_size=12, use_l2_norm=True, commitment_cost=0.25, vit_enc_patch_size=16,
              vit_dec_patch_size=16)
NON_LEGACY = dict(vit_enc_model_size="base", vit_dec_model_size="large", vit_enc_patch_size=16,
                  vit_dec_patch_size=16, finetune_decoder=False, is_legacy=False)


@pytest.mark.parametrize(
    ("config", "name", "knobs"),
    [
        (_official_config(**LEGACY, vit_enc_model_size="small", vit_dec_model_size="small", num_latent_tokens=128,
                          finetune_decoder=True), "titok-s128", {}),
        (_official_config(**LEGACY, vit_enc_model_size="large", vit_dec_model_size="large", num_latent_tokens=32),
         "titok-l32", {}),  # is_legacy and finetune_decoder absent: both default to True
        (_official_config(**LEGACY, vit_enc_model_size="small", vit_dec_model_size="small", num_latent_tokens=128,
                          finetune_decoder=False), "titok-s128", {"pixel_decoder": False}),
        (_official_config(**NON_LEGACY, codebook_size=8192, token_size=64, use_l2_norm=False, commitment_cost=0.25,
                          num_latent_tokens=64), "titok-bl64-vq8k", {}),
        ({"config": _official_config(**NON_LEGACY, quantize_mode="vae", token_size=16, num_latent_tokens=128)},
         "titok-bl128-vae", {}),
    ],
)
def test_official_config_picks_the_composition(config, name, knobs):
    assert spec_from_official_config(config) == tk.spec(name, **knobs)


@pytest.mark.parametrize(
    ("vq", "message"),
    [
        (dict(NON_LEGACY, quantize_mode="vae", token_size=16, num_latent_tokens=64, finetune_decoder=True),
         "finetune_decoder with quantize_mode 'vae'"),
        (dict(NON_LEGACY, quantize_mode="fsq", token_size=16, num_latent_tokens=64), "unsupported quantize_mode"),
        (dict(NON_LEGACY, quantize_mode="vae", num_latent_tokens=64), "no 'token_size'"),
        (dict(NON_LEGACY, quantize_mode="vae", token_size=16, num_latent_tokens=64, vit_dec_patch_size=8),
         "patch sizes"),
    ],
)
def test_bad_official_configs(vq, message):
    with pytest.raises(WeightsError, match=message):
        spec_from_official_config(_official_config(**vq))


GENERATOR_SECTION = dict(model_type="ViT", hidden_size=768, num_hidden_layers=24, num_attention_heads=16,
                         intermediate_size=3072, dropout=0.1, attn_drop=0.1, num_steps=8, class_label_dropout=0.1,
                         image_seq_len="${model.vq_model.num_latent_tokens}", condition_num_classes=1000,
                         randomize_temperature=9.5, guidance_scale=4.5, guidance_decay="linear")


def test_official_generator_config_picks_the_composition():
    from tokenkit.models.official_config import generator_spec_from_official_config

    config = _official_config(**LEGACY, vit_enc_model_size="large", vit_dec_model_size="large", num_latent_tokens=32)
    config["model"]["generator"] = GENERATOR_SECTION
    assert generator_spec_from_official_config(config) == tk.spec("maskgit-titok-l32")
    uvit = dict(GENERATOR_SECTION, model_type="UViT", hidden_size=1024, num_hidden_layers=20, intermediate_size=4096,
                num_steps=64, randomize_temperature=2.8, guidance_scale=6.9, guidance_decay="power-cosine")
    config["model"]["vq_model"]["num_latent_tokens"] = 128
    config["model"]["generator"] = uvit
    assert generator_spec_from_official_config(config) == tk.spec("maskgit-titok-s128")
    config["model"]["generator"] = dict(uvit, model_type="GPT")
    with pytest.raises(WeightsError, match="unsupported generator model_type 'GPT'"):
        generator_spec_from_official_config(config)


MASKGEN_VQ_VQ_MODEL = dict(NON_LEGACY, quantize_mode="vq", codebook_size=8192, token_size=64, use_l2_norm=False,
                          commitment_cost=0.25, clustering_vq=False, num_latent_tokens=128)
MASKGEN_SECTION = dict(micro_condition=True, micro_condition_embed_dim=256, text_drop_prob=0.1)
"""``configs/infer/MaskGen/maskgen_{vq,kl}_{l,xl}.yaml`` of bytedance/1d-tokenizer (their ``model`` sections)."""


@pytest.mark.parametrize(("name", "width", "depth"), [("l", 1024, 16), ("xl", 1280, 20)])
def test_official_maskgen_configs_pick_the_composition(name, width, depth):
    from tokenkit.models.official_config import generator_spec_from_official_config

    size = dict(decoder_embed_dim=width, decoder_depth=depth, decoder_num_heads=16)
    vq = {"model": {"vq_model": MASKGEN_VQ_VQ_MODEL,
                    "maskgen": dict(MASKGEN_SECTION, **size, condition_num_classes=1000, cfg=12.0, num_iter=16,
                                    temperature=2.0, sample_aesthetic_score=6.5)},
          "dataset": {"preprocessing": {"crop_size": 256}}}
    assert generator_spec_from_official_config(vq, "maskgen-vq") == tk.spec(f"maskgen-vq-{name}")
    assert generator_spec_from_official_config({"config": vq}, "maskgen-vq") == tk.spec(f"maskgen-vq-{name}")
    kl = {"model": {"vq_model": dict(NON_LEGACY, quantize_mode="vae", token_size=16, num_latent_tokens=32,
                                     scale_factor=0.7525),
                    "maskgen": dict(MASKGEN_SECTION, **size, cfg=3.0, cfg_schedule="linear", num_iter=32,
                                    temperature=1.0, sample_aesthetic_score=6.5)},
          "losses": {"diffloss_d": 8, "diffloss_w": width}, "dataset": {"preprocessing": {"crop_size": 256}}}
    assert generator_spec_from_official_config(kl, "maskgen-kl") == tk.spec(f"maskgen-kl-{name}")
    del kl["model"]["maskgen"]["decoder_depth"]
    with pytest.raises(WeightsError, match="decoder_depth"):
        generator_spec_from_official_config(kl, "maskgen-kl")


def test_from_pretrained_reads_an_official_generator_folder(tmp_path):
    """config.json holds both sections; the ImageBert weights select the generator."""
    import json

    from safetensors.torch import save_file

    knobs = dict(width=16, depth=2, heads=2, mlp_dim=32, codebook_size=64, num_tokens=4, num_classes=5)
    gen = tk.build("maskgit-titok-l32", **knobs)
    config = _official_config(**dict(LEGACY, codebook_size=64), vit_enc_model_size="large",
                              vit_dec_model_size="large", num_latent_tokens=4)
    config["model"]["generator"] = dict(GENERATOR_SECTION, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=32, condition_num_classes=5)
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(official.IMAGEBERT.to_foreign(gen.state_dict()), tmp_path / "model.safetensors")
    loaded = tk.from_pretrained(tmp_path)
    assert loaded.spec == gen.spec
    assert torch.equal(_outputs(loaded, gen.spec), _outputs(gen, gen.spec))


def test_from_pretrained_reads_an_official_hub_folder(tmp_path):
    """An official folder: config.json (OmegaConf tree) + model.safetensors in the official layout."""
    import json

    from safetensors.torch import save_file

    knobs = dict(image_size=32, patch_size=8, num_tokens=4, encoder_size="tiny", decoder_size="tiny")
    vq = dict(NON_LEGACY, vit_enc_model_size="tiny", vit_dec_model_size="tiny", vit_enc_patch_size=8,
              vit_dec_patch_size=8, quantize_mode="vae", token_size=16, num_latent_tokens=4)
    config = _official_config(**vq)
    config["dataset"]["preprocessing"]["crop_size"] = 32
    tok = tk.build("titok-bl64-vae", **knobs)
    (tmp_path / "config.json").write_text(json.dumps(config))
    save_file(official.TITOK.to_foreign(tok.state_dict()), tmp_path / "model.safetensors")
    loaded = tk.from_pretrained(tmp_path)
    assert loaded.spec == tk.spec("titok-bl64-vae", **knobs)
    images = _images(loaded.spec)
    assert torch.equal(loaded(images).images, tok(images).images)


# ---- save / from_pretrained --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", tk.list_models())
def test_save_pretrained_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = tk.build(tiny_spec(name))
    folder = model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    for source in (folder, folder / "model.safetensors"):  # the folder, or the file alone (spec in its header)
        again = tk.from_pretrained(source)
        assert again.spec == model.spec and not again.training and type(again) is type(model)
        assert torch.equal(_outputs(again, model.spec), _outputs(model, model.spec))


def test_save_pretrained_with_a_runtime_registered_part(tmp_path):
    from test_runtime_part import SignQuantizer

    tk.register("quantizer", "test-sign-save")(SignQuantizer)
    try:
        tok = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("test-sign-save", dim=6)))
        tok.save_pretrained(tmp_path)
        again = tk.from_pretrained(tmp_path)
        images = _images(tok.spec)
        assert torch.equal(again.tokenize(images), tok.tokenize(images))
        assert torch.equal(again.quantizer.bits, tok.quantizer.bits)  # non-persistent buffer rebuilt
    finally:
        tk.unregister("quantizer", "test-sign-save")
    with pytest.raises(WeightsError, match="no quantizer named 'test-sign-save'.*must be imported"):
        tk.from_pretrained(tmp_path)


def test_interrupted_save_keeps_the_last_good_files(tmp_path, monkeypatch):
    import tokenkit.weights.io as wio

    tok = tk.build("titok-tiny")
    tok.save_pretrained(tmp_path)
    before = (tmp_path / "model.safetensors").read_bytes()

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(wio, "save_file", crash)
    with torch.no_grad():
        tok.encoder.proj.bias.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]  # no temp files


def test_config_and_weights_must_agree(tmp_path):
    tk.build("titok-tiny").save_pretrained(tmp_path)
    other = tk.spec("titok-tiny", num_tokens=4)
    (tmp_path / "config.json").write_text(other.to_json())
    with pytest.raises(WeightsError, match="different specs"):
        tk.from_pretrained(tmp_path)


def test_bare_official_file_is_matched_to_a_reference_composition(tmp_path):
    """Without config.json, the names and shapes of an official file pick the composition
    (including the stage-1 form of a two-stage model)."""
    tk.register_model("test-tiny-two-stage", tk.models.titok.titok, **dict(
        image_size=32, patch_size=8, num_tokens=4, encoder_size="tiny", decoder_size="tiny", legacy=True,
        l2_norm=True, pixel_decoder=tk.Part("vqgan", codebook_size=1024, hidden_channels=16,
                                            channel_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=8,
                                            norm_groups=8)))
    try:
        for knobs in ({}, {"pixel_decoder": False}):
            tok = tk.build("test-tiny-two-stage", **knobs)
            path = tmp_path / f"tokenizer{len(knobs)}.bin"
            torch.save(official.TITOK.to_foreign(tok.state_dict()), path)
            assert tk.from_pretrained(path).spec == tok.spec
        torch.save({"encoder.foo": torch.zeros(1)}, tmp_path / "alien.bin")
        with pytest.raises(WeightsError, match="cannot tell which composition"):
            tk.from_pretrained(tmp_path / "alien.bin")
    finally:
        tk.unregister_model("test-tiny-two-stage")


# ---- safety ------------------------------------------------------------------------------------------------------
class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_malicious_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "tokenizer_titok_s128.bin"
    torch.save({"latent_tokens": torch.zeros(2), "payload": _Exploit(marker)}, path)
    with pytest.raises(WeightsError, match="refused to load"):
        tk.build("titok-tiny", pretrained=path)
    with pytest.raises(WeightsError, match="refused to load"):
        tk.from_pretrained(path)
    assert not marker.exists()
    # a plain pickle (not torch.save) carrying the same payload
    with open(tmp_path / "plain.pt", "wb") as f:
        pickle.dump(_Exploit(marker), f)
    with pytest.raises(WeightsError, match="refused to load|not a readable"):
        tk.from_pretrained(tmp_path / "plain.pt")
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_truncated_files_get_a_clear_error(tmp_path, suffix):
    tok = tk.build("titok-tiny")
    path = tmp_path / f"model{suffix}"
    if suffix == ".bin":
        torch.save(tok.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file(tok.state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        tk.build("titok-tiny", pretrained=path)


def test_weights_that_do_not_fit_are_listed_by_name(tmp_path):
    state = tk.build("titok-tiny").state_dict()
    state.pop("encoder.ln_pre.weight")
    state["decoder.extra.weight"] = torch.zeros(1)
    state["quantizer.embedding.weight"] = torch.zeros(3, 8)
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": state}, path)  # a wrapped state dict is unwrapped
    with pytest.raises(WeightsError) as info:
        tk.build("titok-tiny", pretrained=path)
    text = str(info.value)
    assert "1 missing: encoder.ln_pre.weight" in text
    assert "1 unexpected: decoder.extra.weight" in text
    assert "1 mis-shaped: quantizer.embedding.weight (checkpoint (3, 8), model (256, 8))" in text


def test_other_bad_sources(tmp_path):
    with pytest.raises(WeightsError, match="neither an existing file or folder nor a Hub repo id"):
        tk.from_pretrained(tmp_path / "missing" / "model.bin")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(WeightsError, match="expected one of"):
        tk.from_pretrained(tmp_path / "notes.txt")
    torch.save({"a": 1}, tmp_path / "numbers.pt")
    with pytest.raises(WeightsError, match="not a flat state dict of tensors"):
        tk.from_pretrained(tmp_path / "numbers.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match="holds no weight files"):
        tk.from_pretrained(empty)


# ---- the Hub (no network: huggingface_hub is replaced by a local fake) -----------------------------------------------
@pytest.fixture()
def fake_hub(tmp_path, monkeypatch):
    """``hf_hub_download`` served from ``tmp_path/hub/<owner>/<name>/``."""
    import types

    import huggingface_hub
    from huggingface_hub import errors

    root = tmp_path / "hub"
    not_found = types.SimpleNamespace(status_code=404, headers={}, request=None)  # stands in for an HTTP response

    def download(repo_id, filename, revision=None, **_):
        path = root / repo_id / filename
        if not (root / repo_id).is_dir():
            raise errors.RepositoryNotFoundError(f"{repo_id} not found", response=not_found)
        if not path.is_file():
            raise errors.RemoteEntryNotFoundError(f"{filename} not found", response=not_found)
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    return root


def test_from_pretrained_hub_repo(fake_hub):
    tok = tk.build("titok-tiny")
    tok.save_pretrained(fake_hub / "someone" / "tiny-titok")
    again = tk.from_pretrained("someone/tiny-titok")
    images = _images(tok.spec)
    assert torch.equal(again(images).images, tok(images).images)
    # a raw file inside a repo, as in fun-research/TiTok
    torch.save(official.TITOK.to_foreign(tok.state_dict()), fake_hub / "someone" / "tiny-titok" / "raw.bin")
    assert torch.equal(tk.build("titok-tiny", pretrained="someone/tiny-titok/raw.bin")(images).images,
                       tok(images).images)
    with pytest.raises(WeightsError, match="does not exist"):
        tk.from_pretrained("someone/missing-repo")
    with pytest.raises(WeightsError, match="has no file 'nope.bin'"):
        tk.from_pretrained("someone/tiny-titok/nope.bin")


def test_save_pretrained_writes_a_model_card_and_keeps_a_users_own(tmp_path):
    tok = tk.build("titok-tiny")
    tok.save_pretrained(tmp_path / "a", source="a test")
    card = (tmp_path / "a" / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: tokenkit\n") and "Weights: a test." in card
    assert f"Parameters: {sum(p.numel() for p in tok.parameters()):,}." in card
    assert json.loads(card.split("```json\n")[1].split("```")[0]) == tok.spec.to_dict()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "README.md").write_text("my own notes")
    tok.save_pretrained(tmp_path / "b")
    assert (tmp_path / "b" / "README.md").read_text() == "my own notes"
    assert tk.from_pretrained(tmp_path / "b").spec == tok.spec


def test_hub_options_reach_the_download(monkeypatch, tmp_path):
    """``cache_dir``, ``token``, ``local_files_only`` and ``revision`` go to every ``hf_hub_download`` call."""
    import huggingface_hub

    tok = tk.build("titok-tiny")
    tok.save_pretrained(tmp_path / "repo")
    calls = []

    def download(repo_id, filename, **options):
        calls.append(options)
        return str(tmp_path / "repo" / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    tk.from_pretrained("someone/tiny", revision="v1", cache_dir=tmp_path / "cache", token="hf_x",
                       local_files_only=True)
    assert calls and all(c == {"revision": "v1", "cache_dir": tmp_path / "cache", "token": "hf_x",
                               "local_files_only": True} for c in calls)


def test_offline_hub_download_says_what_to_fetch(monkeypatch):
    import huggingface_hub
    from huggingface_hub import errors

    def offline(repo_id, filename, revision=None, **_):
        raise errors.LocalEntryNotFoundError("offline")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(WeightsError) as info:
        tk.from_pretrained("yucornetto/tokenizer_titok_l32_imagenet")
    text = str(info.value)
    assert "https://huggingface.co/yucornetto/tokenizer_titok_l32_imagenet/resolve/main/config.json" in text
    assert "offline" in text and "pass that folder" in text


def test_push_to_hub_uploads_a_loadable_folder(tmp_path):
    uploaded = {}

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            uploaded["created"] = (repo_id, kwargs["exist_ok"])

        def upload_folder(self, *, repo_id, folder_path, **kwargs):
            uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            uploaded["model"] = tk.from_pretrained(folder_path)
            return "https://huggingface.co/me/tok/commit/1"

    tok = tk.build("titok-tiny")
    url = tok.push_to_hub("me/tok", api=FakeApi())
    assert url.endswith("/commit/1")
    assert uploaded["created"] == ("me/tok", True)
    assert uploaded["files"] == ["README.md", "config.json", "model.safetensors"]
    assert uploaded["model"].spec == tok.spec


def test_saved_file_carries_its_spec(tmp_path):
    from tokenkit.weights.io import read_safetensors_metadata

    tok = tk.build("titok-tiny")
    tok.save_pretrained(tmp_path)
    meta = read_safetensors_metadata(tmp_path / "model.safetensors")
    assert tk.TokenizerSpec.from_json(meta[SPEC_METADATA_KEY]) == tok.spec
