"""Every bundled recipe parses and builds; a few steps of each tiny recipe reduce its loss."""

from __future__ import annotations

import json

import pytest
import torch

import tokenkit as tk
from tokenkit.recipes import recipe_names, recipe_path
from tokenkit.registry import get_part
from tokenkit.train.recipe import load_recipe, run_recipe

FAST = ["train.log_every=1", "train.checkpoint_every=0", "train.sample_every=0", "train.warmup_steps=2"]


def _losses(folder, key="loss"):
    lines = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [line[key] for line in lines if key in line]


def _falls(losses, window=4, ratio=0.9):
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    return last < ratio * first


@pytest.mark.parametrize("name", recipe_names())
def test_bundled_recipe_parses_and_builds_on_meta(name):
    recipe = load_recipe(recipe_path(name))
    model = tk.build(recipe.model, device="meta", **dict(recipe.knobs))
    assert sum(p.numel() for p in model.parameters()) > 0
    get_part("dataset", recipe.data.name)
    if recipe.teacher is not None:
        teacher = tk.build(recipe.teacher.model, device="meta", **dict(recipe.teacher.knobs))
        if recipe.init is None:  # stage 1: the student predicts the teacher's grid of codes
            assert model.decoder.config.proxy_codes == teacher.codebook_size
            assert (model.image_size // model.decoder.config.patch_size) ** 2 == teacher.num_tokens
    if recipe.loss is not None:
        tk.build_part("loss", tk.Part(recipe.loss.name, **{**recipe.loss.config, **_offline(recipe.loss)}))


def _offline(part):
    """LPIPS without the VGG download (the structure is what is checked)."""
    if part.name != "composite":
        return {}
    terms = tuple((n, w, tk.Part("lpips", **{**p.config, "pretrained": False}) if p.name == "lpips" else p)
                  for n, w, p in part.config["terms"])
    return {"terms": terms}


def test_single_stage_recipe_reduces_the_loss(tmp_path):
    out = tmp_path / "single"
    recipe = load_recipe(recipe_path("tiny-single-stage"), [*FAST, "train.steps=24", "train.batch_size=8",
                                                             f"train.output_dir={out}", "knobs.encoder_size=tiny",
                                                             "knobs.decoder_size=tiny", "train.lr=2e-3"])
    metrics = run_recipe(recipe, progress=False)
    assert _falls(_losses(out))
    assert metrics["eval_count"] == 6 and metrics["eval_psnr"] > 5 and 0 < metrics["eval_usage"] <= 1


def test_two_stage_recipes_reduce_their_losses_and_stage2_starts_from_stage1(tmp_path):
    s1, s2 = tmp_path / "stage1", tmp_path / "stage2"
    stage1 = load_recipe(recipe_path("tiny-stage1"), [*FAST, "train.steps=24", "train.batch_size=8",
                                                       f"train.output_dir={s1}"])
    metrics = run_recipe(stage1, progress=False)
    assert _falls(_losses(s1, "proxy_ce"))
    assert metrics["eval_count"] == 6 and 0 <= metrics["eval_proxy_accuracy"] <= 1 and metrics["eval_psnr"] > 0
    stage1_model = tk.from_pretrained(s1 / "final")
    assert stage1_model.pixel_decoder is None and stage1_model.decoder.config.head == "proxy"

    stage2 = load_recipe(recipe_path("tiny-stage2"), [*FAST, "train.steps=12", "train.batch_size=4",
                                                       f"train.output_dir={s2}", f"init.weights={s1 / 'final'}",
                                                       "train.lr=1e-3"])
    run_recipe(stage2, progress=False)
    assert _falls(_losses(s2), window=3)
    final = tk.from_pretrained(s2 / "final")
    before, after = stage1_model.state_dict(), final.state_dict()
    for key in before:  # encoder and quantizer frozen, decoder trained
        same = torch.equal(before[key], after[key])
        assert same == key.startswith(("encoder.", "quantizer.")), key
    teacher = stage2.teacher.build()  # random weights, seeded: the pixel decoder started from them and moved
    assert final.pixel_decoder.codebook.weight.shape == teacher.quantizer.embedding.weight.shape


def test_stage2_refuses_weights_that_do_not_fit(tmp_path):
    from tokenkit.train.two_stage import init_stage2

    model = tk.build("titok-tiny", legacy=True, patch_size=16)
    teacher = tk.build("maskgit-vqgan", image_size=32)
    other = tk.build("titok-tiny", legacy=True, patch_size=16, pixel_decoder=False, num_tokens=4)
    stage1 = tk.build("titok-tiny", legacy=True, patch_size=16, pixel_decoder=False)
    init_stage2(model, stage1, teacher)
    got = model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in stage1.state_dict().items())
    assert torch.equal(got["pixel_decoder.codebook.weight"], teacher.quantizer.embedding.weight)
    assert all(torch.equal(got[f"pixel_decoder.{k}"], v) for k, v in teacher.decoder.state_dict().items())
    with pytest.raises(tk.WeightsError, match="shapes"):
        init_stage2(model, other.state_dict(), teacher)
    with pytest.raises(tk.WeightsError, match="missing"):
        init_stage2(model, {}, teacher)
    with pytest.raises(tk.ConfigError, match="pixel_decoder"):
        init_stage2(tk.build("titok-tiny"), {}, teacher)


def test_recipe_sections_are_validated():
    from tokenkit.train.recipe import parse_recipe

    with pytest.raises(tk.ConfigError, match="unknown teacher option.*teachr"):
        parse_recipe({"model": "titok-tiny", "teacher": {"teachr": 1}})
    with pytest.raises(tk.ConfigError, match="needs a teacher section"):
        parse_recipe({"model": "titok-tiny", "init": {"weights": "x", "pixel_decoder": "teacher"}})
    with pytest.raises(tk.ConfigError, match="unknown loss recipe 'stage3'"):
        parse_recipe({"model": "titok-tiny", "loss": {"recipe": "stage3"}})
    with pytest.raises(tk.ConfigError, match="unknown mask schedule"):
        parse_recipe({"model": "maskgit-tiny", "objective": {"schedule": "zigzag"}})
    recipe = parse_recipe({"model": "titok-tiny", "loss": {"recipe": "stage2", "lpips_pretrained": False}})
    assert [t[0] for t in recipe.loss.config["terms"]] == ["reconstruction", "perceptual", "adversarial"]


def test_generator_recipe_on_pretokenized_images_reduces_the_loss(tmp_path):
    from tokenkit.train.demo import DEMO_KNOBS
    from tokenkit.train.pretokenize import pretokenize

    torch.manual_seed(0)
    tokenizer = tk.build("titok-tiny", **DEMO_KNOBS)  # 8 tokens over 1000 codes, as the recipe expects
    dataset = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=48, size=32, resize=64))
    tokens = tmp_path / "tokens.safetensors"
    pretokenize(tokenizer, dataset, tokens, progress=False)
    out = tmp_path / "maskgit"
    recipe = load_recipe(recipe_path("tiny-maskgit"), [*FAST, "train.steps=30", "train.batch_size=16",
                                                        f"train.output_dir={out}", f"data.config.path={tokens}"])
    run_recipe(recipe, progress=False)
    assert _falls(_losses(out, "masked_ce"), window=5)
    generator = tk.from_pretrained(out / "final")
    ids = generator.generate([0, 5], steps=2, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (2, 8) and tokenizer.detokenize(ids).shape == (2, 3, 32, 32)


def test_autoregressive_recipe_on_pretokenized_images_reduces_the_loss(tmp_path):
    """tiny-rar: next-token training with RAR's random orders (probability 1, then annealed) reduces the loss."""
    from tokenkit.train.demo import DEMO_KNOBS
    from tokenkit.train.objectives import NextTokensConfig
    from tokenkit.train.pretokenize import pretokenize

    torch.manual_seed(0)
    tokenizer = tk.build("titok-tiny", **DEMO_KNOBS)
    dataset = tk.build_part("dataset", tk.Part("bundled", crops_per_epoch=48, size=32, resize=64))
    tokens = tmp_path / "tokens.safetensors"
    pretokenize(tokenizer, dataset, tokens, progress=False)
    out = tmp_path / "rar"
    recipe = load_recipe(recipe_path("tiny-rar"), [*FAST, "train.steps=40", "train.batch_size=16",
                                                    "objective.anneal_start=10", "objective.anneal_end=30",
                                                    f"train.output_dir={out}", f"data.config.path={tokens}"])
    assert isinstance(recipe.objective, NextTokensConfig)
    run_recipe(recipe, progress=False)
    assert _falls(_losses(out, "next_token_ce"), window=5)
    ratios = _losses(out, "random_ratio")
    assert ratios[:10] == [1.0] * 10 and ratios[-10:] == [0.0] * 10 and 0 < ratios[20] < 1
    generator = tk.from_pretrained(out / "final")
    ids = generator.generate([0, 5], generator=torch.Generator().manual_seed(0))
    assert ids.shape == (2, 8) and tokenizer.detokenize(ids).shape == (2, 3, 32, 32)


def test_objective_section_follows_the_generator_kind(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: rar-tiny\nobjective: {schedule: arccos}\n")
    with pytest.raises(tk.ConfigError, match="unknown objective option.s. schedule; options are anneal_end"):
        load_recipe(recipe)
    recipe.write_text("model: maskgit-tiny\nobjective: {anneal_start: 3}\n")
    with pytest.raises(tk.ConfigError, match="unknown objective option.s. anneal_start; options are label_smoothing"):
        load_recipe(recipe)
    recipe.write_text("model: maskgen-kl-tiny\nobjective: {schedule: arccos}\n")
    with pytest.raises(tk.ConfigError, match="unknown objective option.s. schedule; options are eval_draws"):
        load_recipe(recipe)
    recipe.write_text("model: maskgen-vq-tiny\nobjective: {eval_draws: 2}\n")
    with pytest.raises(tk.ConfigError, match="unknown objective option.s. eval_draws"):
        load_recipe(recipe)


def test_resolution_finetune_recipe_loads_32px_weights_at_64px_and_trains_the_decoder(tmp_path):
    """tiny-finetune-resolution: weights of a 32 px tokenizer load at 64 px (position tables resampled, one
    warning), only the decoder side trains, and the loss falls."""
    import warnings

    from tokenkit.train.demo import DEMO_KNOBS

    torch.manual_seed(0)
    small = tk.build("titok-tiny", **DEMO_KNOBS)  # the demo's composition at 32 px
    small.save_pretrained(tmp_path / "demo")
    out = tmp_path / "ft"
    recipe = load_recipe(recipe_path("tiny-finetune-resolution"), [
        *FAST, "train.steps=30", "train.batch_size=8", "train.eval_every=0", "train.lr=1e-3",
        f"init.weights={tmp_path / 'demo'}", f"train.output_dir={out}", "data.config.crops_per_epoch=64"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_recipe(recipe, progress=False)
    assert [str(w.message) for w in caught if "resampled" in str(w.message)] == [
        "resampled decoder.positional_embedding, encoder.positional_embedding from 4x4 to 8x8 patches (bicubic, "
        "antialiased); fine-tune for best quality"]
    assert _falls(_losses(out), window=5)
    tuned = tk.from_pretrained(out / "final")
    assert tuned.image_size == 64
    assert torch.equal(tuned.encoder.patch_embed.weight, small.encoder.patch_embed.weight)  # frozen
    assert not torch.equal(tuned.decoder.decoder_embed.weight, small.decoder.decoder_embed.weight)


# ---- text: TA-TiTok, MaskGen, MaskGen-KL ----------------------------------------------------------------------
CAPTIONED = {"part": "bundled", "config": {"size": 32, "crops_per_epoch": 48, "captions": True}}


def _captioned_tokens(tokenizer, path):
    """The bundled images with captions (8 centre crops per image, each with a drawn caption), pre-tokenized."""
    from tokenkit.train.pretokenize import pretokenize

    return pretokenize(tokenizer, tk.build_part("dataset", tk.Part.from_dict(CAPTIONED)), path, progress=False)


def test_text_aware_tokenizer_recipe_reduces_the_loss_and_reconstructs_with_text(tmp_path):
    """tiny-tatitok: TA-TiTok trains on captioned crops; the result decodes with prompts (and they matter)."""
    out = tmp_path / "tatitok"
    recipe = load_recipe(recipe_path("tiny-tatitok"), [*FAST, "train.steps=30", "train.batch_size=8",
                                                        "train.lr=2e-3", f"train.output_dir={out}"])
    assert recipe.data.config["captions"] and recipe.eval.config["captions"]
    metrics = run_recipe(recipe, progress=False)
    assert _falls(_losses(out), window=5)
    assert metrics["eval_count"] == 6 and metrics["eval_psnr"] > 5
    model = tk.from_pretrained(out / "final")
    assert model.takes_text and not any(k.startswith("text_encoder.") for k in model.state_dict())
    fresh = tk.build("tatitok-tiny")  # the frozen random text tower is rebuilt from its seed, not saved
    assert torch.equal(model.encode_text(["a cat"]).tokens, fresh.encode_text(["a cat"]).tokens)
    images = tk.data.sample_images(32, names=["coffee", "rocket"], seed=0)
    prompts = [tk.data.captions("coffee")[0], tk.data.captions("rocket")[0]]
    ids = model.tokenize(images)
    decoded = model.detokenize(ids, text=prompts)
    assert decoded.shape == (2, 3, 32, 32) and not torch.equal(decoded, model.detokenize(ids, text=prompts[::-1]))


def test_maskgen_recipe_on_captioned_tokens_reduces_the_loss(tmp_path):
    """tiny-maskgen: MaskGen learns the tiny TA-TiTok's ids of the bundled images from their captions."""
    torch.manual_seed(0)
    tokenizer = tk.build("tatitok-tiny")
    info = _captioned_tokens(tokenizer, tmp_path / "tokens.safetensors")
    assert info["texts"] and info["count"] == 96
    out = tmp_path / "maskgen"
    recipe = load_recipe(recipe_path("tiny-maskgen"), [*FAST, "train.steps=50", "train.batch_size=16",
                                                        f"train.output_dir={out}", f"data.config.path={info['path']}"])
    run_recipe(recipe, progress=False)
    assert _falls(_losses(out, "masked_ce"), window=5)
    generator = tk.from_pretrained(out / "final")
    prompts = ["a cup of espresso on a red saucer", "a rocket on the launch pad at dusk"]
    ids = generator.generate(prompts, steps=2, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (2, 8) and tokenizer.detokenize(ids, text=prompts).shape == (2, 3, 32, 32)


def test_maskgen_kl_recipe_on_continuous_codes_reduces_the_loss(tmp_path):
    """tiny-maskgen-kl: MaskGen-KL's diffusion loss on a tiny TA-TiTok VAE's codes falls; held-out items are
    scored at fixed seeds."""
    torch.manual_seed(0)
    vae = tk.build("tatitok-tiny", quantizer="gaussian")
    info = _captioned_tokens(vae, tmp_path / "codes.safetensors")
    assert info["codebook_size"] is None and info["token_dim"] == 16
    out = tmp_path / "maskgen-kl"
    recipe = load_recipe(recipe_path("tiny-maskgen-kl"), [
        *FAST, "train.steps=40", "train.batch_size=16", f"train.output_dir={out}", f"data.config.path={info['path']}",
        "eval.part=tokens", f"eval.config.path={info['path']}", "objective.eval_draws=1"])
    metrics = run_recipe(recipe, progress=False)
    assert _falls(_losses(out, "diffusion"), window=8)
    assert metrics["eval_count"] == 96 and metrics["eval_diffusion"] > 0
    generator = tk.from_pretrained(out / "final")
    prompts = ["a cup of espresso on a red saucer"]
    codes = generator.generate(prompts, generator=torch.Generator().manual_seed(0))
    assert codes.shape == (1, 8, 16) and vae.decode(codes, text=prompts).shape == (1, 3, 32, 32)
