"""Training with text: the bundled captions, captioned datasets, pre-tokenized captions and continuous codes,
the text objectives (TA-TiTok reconstruction, MaskGen masked tokens, MaskGen-KL diffusion) and the trainer
around a model holding a frozen text encoder."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import tokenkit as tk
from tokenkit.contracts import TextEmbeddings
from tokenkit.errors import ConfigError, ContractError
from tokenkit.train import TrainConfig, Trainer
from tokenkit.train.data import BatchStream, as_batch
from tokenkit.train.objectives import DiffusionTokens, MaskedTokens, ProxyCodes, Reconstruction, call_through
from tokenkit.train.pretokenize import pretokenize

PROMPTS = ["a cup of espresso", "a rocket at dusk", "a tabby cat", "galaxies"]


def _captioned(count=6, **options):
    return tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=count, size=32, captions=True, **options))


@pytest.fixture(scope="module")
def tatitok():
    torch.manual_seed(0)
    return tk.build("tatitok-tiny")


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    return tk.build("tatitok-tiny", quantizer="gaussian")


# ---- captions -------------------------------------------------------------------------------------------------
def test_every_bundled_image_has_three_short_captions():
    from importlib import resources

    names = tk.data.image_names()
    listing = json.loads((resources.files("tokenkit.data") / "images" / "captions.json").read_text("utf-8"))
    assert sorted(listing) == names
    for name in names:
        captions = tk.data.captions(name)
        assert len(captions) == 3 and len(set(captions)) == 3
        assert all(isinstance(c, str) and 0 < len(c) <= 100 for c in captions)
    tk.data.captions("coffee").append("mutated")  # a copy: the cached captions stay
    assert len(tk.data.captions("coffee")) == 3
    with pytest.raises(ConfigError, match="no bundled image 'moon'"):
        tk.data.captions("moon")
    readme = (resources.files("tokenkit.data") / "images" / "README.md").read_text("utf-8")
    assert "captions.json" in readme and "CC0" in readme


def test_bundled_captions_are_drawn_deterministically_and_leave_the_crops_alone():
    plain = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=24, size=32, flip=True))
    captioned = _captioned(24, flip=True)
    texts = []
    for i in range(len(captioned)):
        item = captioned[i]
        name = captioned.names[item["label"]]
        assert item["text"] in tk.data.captions(name)
        assert torch.equal(item["image"], plain[i]["image"]) and item["key"] == plain[i]["key"]
        assert captioned[i]["text"] == item["text"]  # the same item, the same caption
        texts.append(item["text"])
    assert len(set(texts)) > 6  # several captions per image are drawn
    assert [captioned.eval()[i]["text"] for i in range(24)] == texts  # as in training mode
    captioned.train()
    captioned.set_epoch(1)
    assert [captioned[i]["text"] for i in range(24)] != texts  # another epoch, other draws
    captioned.set_epoch(0)
    assert "text" not in plain[0]


def test_captions_survive_batching_and_the_dataset_contract():
    batch = as_batch([_captioned()[i] for i in range(3)])
    assert isinstance(batch["text"], list) and len(batch["text"]) == 3 and batch["image"].shape == (3, 3, 32, 32)
    stream = BatchStream(_captioned(12), 4, seed=0)
    got = stream.next()
    assert isinstance(got["text"], list) and len(got["text"]) == 4
    assert stream.first(5)["text"] == [_captioned(12)[i]["text"] for i in range(5)]
    from tokenkit.datasets.bundled import BundledConfig
    from tokenkit.testing import check_dataset

    config = BundledConfig(crops_per_epoch=4, size=8, captions=True)
    check_dataset(tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=4, size=8, captions=True)), config)


# ---- pre-tokenized captions and codes ------------------------------------------------------------------------
def test_pretokenize_keeps_the_captions_of_originals_and_flipped_copies(tatitok, tmp_path):
    data = _captioned(5)
    captions = [data[i]["text"] for i in range(5)]
    info = pretokenize(tatitok, data, tmp_path / "t.safetensors", batch_size=2, progress=False)
    assert info["texts"] and info["count"] == 10 and info["codebook_size"] == 256 and info["token_dim"] is None
    ds = tk.build_part("dataset", tk.Part("tokens", path=info["path"]))
    # per batch of 2 (the last of 1): the originals, then their flipped copies
    assert ds.texts == captions[0:2] * 2 + captions[2:4] * 2 + captions[4:5] * 2
    assert ds.metadata["texts"] == "true" and ds[0]["text"] == captions[0] and sorted(ds[0]) == [
        "key", "label", "text", "tokens"]
    jsonl = pretokenize(tatitok, data, tmp_path / "t.jsonl", batch_size=2, progress=False)
    from_jsonl = tk.build_part("dataset", tk.Part("tokens", path=jsonl["path"]))
    assert from_jsonl.texts == ds.texts and torch.equal(from_jsonl.tokens, ds.tokens)
    first = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[0])
    assert sorted(first) == ["class_id", "text", "tokens"]
    plain = pretokenize(tatitok, tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=2, size=32)),
                        tmp_path / "plain.safetensors", progress=False)
    assert not plain["texts"] and "text" not in tk.build_part("dataset", tk.Part("tokens", path=plain["path"]))[0]


def test_captioned_items_need_no_labels_and_captions_must_be_on_every_item(tatitok, tmp_path):
    class Items(torch.utils.data.Dataset):
        def __init__(self, texts):
            self.texts = texts

        def __len__(self):
            return len(self.texts)

        def __getitem__(self, i):
            item = {"image": torch.full((3, 32, 32), 0.5), "label": -1, "key": str(i)}
            return item if self.texts[i] is None else {**item, "text": self.texts[i]}

    info = pretokenize(tatitok, Items(["a", "b"]), tmp_path / "t.safetensors", progress=False)
    assert info["texts"]
    with pytest.raises(ConfigError, match="some of the dataset's items carry a caption"):
        pretokenize(tatitok, Items(["a", "b", None, None]), tmp_path / "u.safetensors", batch_size=2, progress=False,
                    allow_unlabelled=True)
    with pytest.raises(ConfigError, match="unlabelled items"):
        pretokenize(tatitok, Items([None, None]), tmp_path / "v.safetensors", progress=False)
    assert not (tmp_path / "u.safetensors").exists() and not (tmp_path / "v.safetensors").exists()


def test_a_continuous_tokenizer_stores_its_codes_and_they_round_trip(vae, tmp_path):
    data = _captioned(3)
    info = pretokenize(vae, data, tmp_path / "codes.safetensors", progress=False)
    assert (info["count"], info["num_tokens"], info["codebook_size"], info["token_dim"]) == (6, 8, None, 16)
    ds = tk.build_part("dataset", tk.Part("tokens", path=info["path"], num_tokens=8, token_dim=16))
    images = torch.stack([data.eval()[i]["image"] for i in range(3)])
    data.train()
    with torch.no_grad():
        expected = torch.cat([vae.eval().encode(images).codes, vae.encode(images.flip(-1)).codes])
    torch.testing.assert_close(ds.codes, expected, rtol=0, atol=1e-6)
    item = ds[4]
    assert ds.tokens is None and ds.codebook_size is None and ds.num_tokens == 8 and ds.token_dim == 16
    assert sorted(item) == ["codes", "key", "label", "text"] and item["codes"].dtype == torch.float32
    assert item["key"].endswith("#flip") and item["text"] == ds[1]["text"]
    assert ds.metadata["codebook_size"] == "none" and ds.metadata["token_dim"] == "16"
    batch = as_batch([ds[i] for i in range(4)])
    assert batch["codes"].shape == (4, 8, 16) and len(batch["text"]) == 4
    with pytest.raises(ConfigError, match="token_dim is 4"):
        tk.build_part("dataset", tk.Part("tokens", path=info["path"], token_dim=4))
    # a discrete tokenizer's quantized codes on request
    vq = pretokenize(tk.build("tatitok-tiny"), data, tmp_path / "vq.safetensors", progress=False, codes=True)
    assert vq["codebook_size"] is None and vq["token_dim"] == 8


def test_tokens_files_with_bad_codes_or_texts_are_refused(tmp_path):
    from tokenkit.datasets.tokens import encode_texts
    from tokenkit.weights.io import save_safetensors

    def build(tensors):
        save_safetensors(tensors, tmp_path / "t.safetensors")
        return tk.build_part("dataset", tk.Part("tokens", path=str(tmp_path / "t.safetensors")))

    codes = torch.randn(2, 3, 4)
    assert build({"codes": codes, **encode_texts(["a", "b"])}).texts == ["a", "b"]
    with pytest.raises(ConfigError, match="no tensor 'tokens'.*or 'codes'"):
        build({"labels": torch.zeros(2, dtype=torch.long)})
    with pytest.raises(ConfigError, match=r"codes .* must be floats of shape \(M, N, C\)"):
        build({"codes": torch.zeros(2, 3, dtype=torch.long)})
    with pytest.raises(ConfigError, match=r"item 1\): codes hold NaN"):
        build({"codes": torch.stack([codes[0], torch.full((3, 4), float("nan"))])})
    with pytest.raises(ConfigError, match="holds 1 texts for 2 items"):
        build({"codes": codes, **encode_texts(["a"])})
    with pytest.raises(ConfigError, match="both 'texts' and 'text_offsets'"):
        build({"codes": codes, "texts": encode_texts(["a", "b"])["texts"]})
    with pytest.raises(ConfigError, match="different items or token counts"):
        build({"codes": codes, "tokens": torch.zeros(2, 5, dtype=torch.long)})
    path = tmp_path / "t.jsonl"
    path.write_text('{"class_id": 0, "tokens": [1], "text": "a"}\n{"class_id": 0, "tokens": [2]}\n')
    with pytest.raises(ConfigError, match=r"t\.jsonl:2: no text, unlike the line before"):
        tk.build_part("dataset", tk.Part("tokens", path=str(path)))


# ---- objectives -----------------------------------------------------------------------------------------------
def test_text_objectives_name_the_missing_text(tatitok):
    images = tk.data.sample_images(32, names=["coffee", "rocket"], seed=0)
    with pytest.raises(ContractError, match="text-aware tokenizer trains on batches with captions.*captions: true"):
        Reconstruction()(tatitok, {"image": images}, step=0)
    with pytest.raises(ContractError, match="captions: true"):
        Reconstruction().evaluate(tatitok, {"image": images})
    tokens = torch.randint(0, 256, (2, 8))
    with pytest.raises(ContractError, match="text-conditioned generator trains on batches with 'tokens' and 'text'"):
        MaskedTokens()(tk.build("maskgen-vq-tiny"), {"tokens": tokens, "label": torch.tensor([0, 1])}, step=0)
    with pytest.raises(ContractError, match="maskgen-kl.*'codes' and 'text'.*got keys \\['label', 'tokens'\\]"):
        DiffusionTokens()(tk.build("maskgen-kl-tiny"), {"tokens": tokens, "label": torch.tensor([0, 1])}, step=0)
    with pytest.raises(ContractError, match="'tokens' and 'label'"):  # a class-conditional one still wants labels
        MaskedTokens()(tk.build("maskgit-tiny"), {"tokens": tokens, "text": ["a", "b"]}, step=0)


def test_reconstruction_with_text_matches_the_tokenizer_and_depends_on_it(tatitok):
    images = tk.data.sample_images(32, names=["coffee", "rocket", "chelsea"], seed=0)
    prompts = PROMPTS[:3]
    objective = Reconstruction()
    tatitok.eval()
    torch.testing.assert_close(objective.reconstruct(tatitok, images, text=prompts),
                               tatitok.detokenize(tatitok.tokenize(images), text=prompts), rtol=0, atol=1e-5)
    values, ids = objective.evaluate(tatitok, {"image": images, "text": prompts})
    other, _ = objective.evaluate(tatitok, {"image": images, "text": prompts[::-1]})
    assert ids.shape == (3, 8) and not torch.equal(values["psnr"], other["psnr"])
    out = objective(tatitok.train(), {"image": images, "text": prompts}, step=0)
    assert out.loss.requires_grad and sorted(out.terms) == ["bottleneck", "mse"]


def test_a_text_aware_proxy_student_reads_the_captions():
    teacher = tk.build("maskgit-vqgan", image_size=32)
    student = tk.build("tatitok-tiny", legacy=True, patch_size=16, pixel_decoder=False)
    images = tk.data.sample_images(32, names=["astronaut", "coffee"], seed=0)
    objective = ProxyCodes(teacher)
    out = objective(student, {"image": images, "text": PROMPTS[:2]}, step=0)
    assert out.loss.requires_grad and "proxy_accuracy" in out.stats
    assert objective.reconstruct(student, images, text=PROMPTS[:2]).shape == (2, 3, 32, 32)
    with pytest.raises(ContractError, match="captions"):
        objective(student, {"image": images}, step=0)


def test_masked_tokens_with_text_embed_without_gradients_and_evaluate_reproducibly():
    generator = tk.build("maskgen-vq-tiny")
    batch = {"tokens": torch.randint(0, 256, (4, 8), generator=torch.Generator().manual_seed(0)), "text": PROMPTS}
    out = MaskedTokens()(generator.train(), batch, step=0)
    out.loss.backward()
    assert all(p.grad is None for p in generator.text_encoder.parameters())
    assert generator.token_embedding.weight.grad is not None
    state = torch.get_rng_state()
    first, _ = MaskedTokens().evaluate(generator.eval(), batch)
    again, _ = MaskedTokens().evaluate(generator, batch)
    assert torch.equal(state, torch.get_rng_state()) and all(torch.equal(first[k], again[k]) for k in first)


def test_diffusion_tokens_trains_and_scores_each_item_at_fixed_seeds():
    generator = tk.build("maskgen-kl-tiny")
    codes = torch.randn(3, 8, 4, generator=torch.Generator().manual_seed(0))
    batch = {"codes": codes, "text": PROMPTS[:3]}
    out = DiffusionTokens()(generator.train(), batch, step=0)
    out.loss.backward()
    assert out.terms["diffusion"] == out.loss.detach() and generator.head is not None
    assert all(p.grad is None for p in generator.text_encoder.parameters())
    objective = DiffusionTokens()
    state = torch.get_rng_state()
    values, ids = objective.evaluate(generator.eval(), batch)
    assert ids is None and values["diffusion"].shape == (3,) and torch.equal(state, torch.get_rng_state())
    alone, _ = objective.evaluate(generator, {"codes": codes[1:2], "text": PROMPTS[1:2]})
    torch.testing.assert_close(alone["diffusion"], values["diffusion"][1:2])  # independent of the batch


def test_call_through_runs_a_method_inside_the_wrapper_forward_and_restores_it():
    class Inner(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x)

        def loss(self, x):
            return self(x).square().mean()  # calls its own forward

    class Wrapper(nn.Module):  # stands for DistributedDataParallel
        def __init__(self, module):
            super().__init__()
            self.module, self.calls = module, 0

        def forward(self, *args, **kwargs):
            self.calls += 1
            return self.module(*args, **kwargs)

    inner = Inner()
    wrapper = Wrapper(inner)
    x = torch.ones(3, 2)
    assert torch.equal(call_through(wrapper, "loss", x), inner.loss(x)) and wrapper.calls == 1
    assert "forward" not in vars(inner) and torch.equal(inner(x), inner.linear(x))
    assert torch.equal(call_through(inner, "loss", x), inner.loss(x))  # not wrapped: called directly


# ---- the trainer around a frozen text encoder ----------------------------------------------------------------
def _tatitok_config(tmp_path, name, **changes):
    base = {"model": "tatitok-tiny", "steps": 4, "batch_size": 4, "lr": 1e-3, "ema_decay": 0.9, "log_every": 1,
            "precision": "fp32", "output_dir": str(tmp_path / name)}
    return TrainConfig(**{**base, **changes})


def test_the_frozen_text_encoder_is_not_optimised_nor_copied_nor_saved(tmp_path):
    trainer = Trainer(_tatitok_config(tmp_path, "run", sample_every=2, sample_count=3), _captioned(12))
    model = trainer.accelerator.unwrap_model(trainer.model)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    text_params = list(model.text_encoder.parameters())
    assert text_params and not optimised & {id(p) for p in text_params}
    assert optimised == {id(p) for p in model.parameters() if p.requires_grad}
    assert trainer.ema.shadow.text_encoder is model.text_encoder  # shared, not a second copy
    before = [p.detach().clone() for p in text_params]
    trainer.train(progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.text_encoder.parameters()))
    assert not model.text_encoder.training and model.decoder.training
    assert not any(k.startswith("text_encoder.") for k in trainer.state_dict()["model"])
    assert not any("text_encoder." in k for k in trainer.state_dict()["ema"])
    samples = tmp_path / "run" / "samples"
    assert sorted(p.name for p in samples.iterdir()) == ["step-0000002.png", "step-0000002.txt", "step-0000004.png",
                                                         "step-0000004.txt"]
    assert (samples / "step-0000004.txt").read_text().splitlines() == [_captioned(12)[i]["text"] for i in range(3)]


def test_a_plain_tokenizer_trains_on_captioned_images_and_ignores_the_captions(tmp_path):
    config = _tatitok_config(tmp_path, "plain", model="titok-tiny", steps=2, sample_every=2, sample_count=2)
    trainer = Trainer(config, _captioned(8))
    assert trainer.train(progress=False)["step"] == 2
    assert sorted(p.name for p in (tmp_path / "plain" / "samples").iterdir()) == ["step-0000002.png"]


def test_a_text_aware_tokenizer_resumes_bit_exactly(tmp_path):
    data = _captioned(12, flip=True)
    full = Trainer(_tatitok_config(tmp_path, "full"), data)
    full.train(progress=False)
    first = Trainer(_tatitok_config(tmp_path, "split"), data)
    first.train(stop_after=2, progress=False)
    first.save()
    second = Trainer(_tatitok_config(tmp_path, "split"), data)
    assert second.resume() and second.step == 2
    second.train(progress=False)
    for a, b in ((full.state_dict()["model"], second.state_dict()["model"]),
                 (full.trained_model().state_dict(), second.trained_model().state_dict())):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_trainer_picks_the_objective_by_the_generator(tmp_path):
    tokens = [{"tokens": torch.randint(0, 256, (8,)), "label": 0, "key": str(i), "text": PROMPTS[i % 4]}
              for i in range(8)]
    codes = [{"codes": torch.randn(8, 4), "label": -1, "key": str(i), "text": PROMPTS[i % 4]} for i in range(8)]
    maskgen = Trainer(TrainConfig(model="maskgen-vq-tiny", steps=2, batch_size=4, precision="fp32",
                                  output_dir=str(tmp_path / "maskgen")), tokens)
    kl = Trainer(TrainConfig(model="maskgen-kl-tiny", steps=2, batch_size=4, precision="fp32",
                             output_dir=str(tmp_path / "kl")), codes)
    assert type(maskgen.objective) is MaskedTokens and type(kl.objective) is DiffusionTokens
    result = kl.train(progress=False)
    assert result["step"] == 2 and result["diffusion"] > 0
    assert isinstance(tk.build("maskgen-kl-tiny").encode_text(PROMPTS[:1]), TextEmbeddings)


@pytest.mark.parametrize(("model", "payload"), [("maskgen-vq-tiny", "tokens"), ("maskgen-kl-tiny", "codes")])
def test_text_conditioned_generators_resume_bit_exactly(tmp_path, model, payload):
    """Masks, text dropout and diffusion draws come from the global random state, which checkpoints keep."""
    g = torch.Generator().manual_seed(0)
    values = torch.randint(0, 256, (12, 8), generator=g) if payload == "tokens" else torch.randn(12, 8, 4, generator=g)
    data = [{payload: v, "label": -1, "key": str(i), "text": PROMPTS[i % 4]} for i, v in enumerate(values)]

    def trainer(name):
        config = TrainConfig(model=model, knobs={"text_dropout": 0.5}, steps=4, batch_size=4, lr=1e-3, ema_decay=0.9,
                             log_every=1, precision="fp32", output_dir=str(tmp_path / name))
        return Trainer(config, data)

    full = trainer("full")
    full.train(progress=False)
    first = trainer("split")
    first.train(stop_after=2, progress=False)
    first.save()
    second = trainer("split")
    assert second.resume() and second.step == 2
    second.train(progress=False)
    for a, b in ((full.state_dict()["model"], second.state_dict()["model"]),
                 (full.trained_model().state_dict(), second.trained_model().state_dict())):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not any(k.startswith("text_encoder.") for k in full.state_dict()["model"])
