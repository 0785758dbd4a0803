"""tokenkit.precision: "auto" picks bf16 only where it is native, and every entry point records what it chose.

The CPU and CUDA capabilities are mocked both ways, so these tests say the same on any machine.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import tokenkit as tk
from tokenkit.train import TrainConfig, Trainer
from tokenkit.precision import PRECISIONS, autocast, cpu_bf16_native, describe, resolve_precision


@pytest.fixture
def cpu(monkeypatch):
    """``cpu(avx512_bf16=..., amx=..., capability=..., isa=...)`` mocks what torch says about this CPU."""

    def mock(*, avx512_bf16: bool = False, amx: bool = False, capability: str = "AVX512", isa: str | None = None):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
        if isa is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", isa)
        cpu_bf16_native.cache_clear()

    yield mock
    cpu_bf16_native.cache_clear()


NATIVE = {"avx512_bf16": True}
EMULATED = {"avx512_bf16": True, "capability": "AVX2"}  # the hardware has it, torch runs AVX2 kernels


@pytest.mark.parametrize("caps, expected", [
    ({"avx512_bf16": True}, "bf16"),
    ({"amx": True}, "bf16"),
    ({"avx512_bf16": True, "isa": "AVX512_CORE_AMX"}, "bf16"),
    ({}, "fp32"),                                          # AVX-512 without bf16
    ({"capability": "AVX2"}, "fp32"),                      # an AVX2-only CPU
    ({"avx512_bf16": True, "capability": "AVX2"}, "fp32"),  # ATEN_CPU_CAPABILITY=avx2
    ({"avx512_bf16": True, "isa": "AVX2"}, "fp32"),         # ONEDNN_MAX_CPU_ISA=AVX2
    ({"avx512_bf16": True, "isa": "avx512_core"}, "fp32"),  # oneDNN capped below AVX-512-bf16
])
def test_auto_on_the_cpu_is_bf16_only_where_it_is_native(cpu, caps, expected):
    cpu(**caps)
    assert cpu_bf16_native() is (expected == "bf16")
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision() == expected  # auto on the CPU is the default
    assert describe("auto", "cpu").startswith(f"precision auto -> {expected} (")
    assert f"torch CPU capability {caps.get('capability', 'AVX512')}" in describe("auto", "cpu")


def test_explicit_names_are_kept_and_fp16_is_never_automatic_on_a_cpu(cpu):
    cpu(**EMULATED)
    for name in ("fp32", "bf16", "fp16"):
        assert resolve_precision(name, "cpu") == name
        assert describe(name, "cpu").startswith(f"precision {name} (")
    assert "fp16" not in {resolve_precision("auto", "cpu") for _ in range(2)}
    assert resolve_precision("auto", "meta") == "fp32"


def test_auto_on_cuda_is_bf16_with_support_and_fp16_without(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", "cuda") == "bf16"
    assert resolve_precision("auto", torch.device("cuda", 0)) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", "cuda") == "fp16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    with pytest.raises(tk.ConfigError, match="without bf16 support"):
        resolve_precision("bf16", "cuda")


def test_bad_names_raise_config_errors():
    for bad in ("bfloat16", "FP32", "no", "", None):
        with pytest.raises(tk.ConfigError, match="precision must be one of auto, fp32, bf16, fp16"):
            resolve_precision(bad, "cpu")
    assert PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    with pytest.raises(tk.ConfigError, match="precision must be one of"):
        TrainConfig(precision="bfloat16")
    gen, tok = tk.build("maskgit-tiny"), tk.build("titok-tiny")
    with pytest.raises(tk.ConfigError, match="precision must be one of"):
        tk.generate_images(gen, tok, [1], seed=0, steps=1, precision="half")
    with pytest.raises(tk.ConfigError, match="precision must be one of"):
        tk.evaluate_reconstruction(tok, tk.data.sample_images(32, seed=0), metrics="psnr", precision="half",
                                   progress=False)


def test_autocast_contexts(cpu):
    cpu(**NATIVE)
    x = torch.ones(2, 2)
    with autocast("auto", "cpu"):
        assert (x @ x).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert (x @ x).dtype == torch.float32
    cpu(**EMULATED)
    with autocast("auto", "cpu"):
        assert (x @ x).dtype == torch.float32


# ---- what each entry point records -------------------------------------------------------------------------------
def _train(tmp_path, name, stop_after=None, **changes):
    images = tk.data.sample_images(32, per_image=2, seed=0)
    config = TrainConfig(model="titok-tiny", knobs={"quantizer": "fsq", "encoder_size": "tiny",
                                                             "decoder_size": "tiny"},
                                  **{"steps": 2, "batch_size": 4, "log_every": 1,
                                     "output_dir": str(tmp_path / name), **changes})
    trainer = Trainer(config, images)
    seen = []
    trainer.accelerator.unwrap_model(trainer.model).encoder.register_forward_hook(
        lambda module, args, out: seen.append(out.dtype))
    trainer.train(stop_after=stop_after, progress=False)
    return trainer, seen


@pytest.mark.parametrize("caps, expected, dtype", [(NATIVE, "bf16", torch.bfloat16),
                                                   (EMULATED, "fp32", torch.float32)])
def test_the_trainer_resolves_auto_and_records_it(tmp_path, cpu, caps, expected, dtype, capsys):
    cpu(**caps)
    trainer, seen = _train(tmp_path, expected)
    assert trainer.config.precision == "auto" and trainer.precision == expected
    assert seen == [dtype, dtype]
    lines = [json.loads(line) for line in (tmp_path / expected / "metrics.jsonl").read_text().splitlines()]
    assert [line["precision"] for line in lines] == [expected, expected]
    checkpoint = torch.load(trainer.save(), weights_only=True)
    assert checkpoint["precision"] == expected and checkpoint["config"]["precision"] == "auto"
    assert trainer.evaluate(tk.data.sample_images(32, seed=1))["psnr"] > 0
    trainer.train(progress=True)  # already finished: prints the precision line, then nothing to do
    assert capsys.readouterr().out.count(f"precision auto -> {expected} (") == 1


def test_resuming_in_another_precision_warns(tmp_path, cpu):
    cpu(**NATIVE)
    first, _ = _train(tmp_path, "run")
    first.save()
    cpu(**EMULATED)
    config = dict(first.config.__dict__)
    second = Trainer(TrainConfig(**{**config, "steps": 3}), tk.data.sample_images(32, seed=0))
    with pytest.warns(UserWarning, match="trained in bf16; this run continues in fp32"):
        assert second.resume()


def test_fp16_training_scales_the_loss_and_skips_overflowing_steps(tmp_path):
    trainer, seen = _train(tmp_path, "fp16", precision="fp16", steps=3, stop_after=2)
    assert trainer.precision == "fp16" and seen == [torch.float16, torch.float16]
    lines = [json.loads(line) for line in (tmp_path / "fp16" / "metrics.jsonl").read_text().splitlines()]
    assert all(line["precision"] == "fp16" and line["loss_scale"] > 0 for line in lines)
    state = trainer.state_dict()
    assert state["scaler"]["scale"] == trainer.scaler.get_scale()
    # a step whose fp16 gradients overflow (the loss itself is finite, so on_nonfinite does not stop the
    # run) is skipped by the loss scale: weights unchanged, loss scale halved
    model = trainer.accelerator.unwrap_model(trainer.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scale = trainer.scaler.get_scale()
    original = trainer.objective.forward

    def overflow(*args, **kwargs):
        result = original(*args, **kwargs)
        return result._replace(loss=result.loss * 1e30)

    trainer.objective.forward = overflow
    trainer.train(progress=False)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert trainer.scaler.get_scale() == scale / 2
    again = Trainer(trainer.config, tk.data.sample_images(32, seed=0))
    again.load_state_dict(trainer.state_dict())
    assert again.scaler.get_scale() == scale / 2


def test_old_recipes_mixed_precision_is_read_with_a_warning():
    from tokenkit.train.recipe import parse_recipe

    for old, new in (("no", "fp32"), ("bf16", "bf16"), ("fp16", "fp16")):
        with pytest.warns(FutureWarning, match=f"mixed_precision: {old} is deprecated; it is read as precision: {new}"):
            recipe = parse_recipe({"model": "titok-tiny", "train": {"mixed_precision": old}})
        assert recipe.train.precision == new
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_recipe({"model": "titok-tiny"}).train.precision == "auto"
        assert parse_recipe({"model": "titok-tiny", "train": {"precision": "fp32"}}).train.precision == "fp32"
    with pytest.raises(tk.ConfigError, match="mixed_precision is deprecated .* got 'fp8'"):
        parse_recipe({"model": "titok-tiny", "train": {"mixed_precision": "fp8"}})
    with pytest.raises(tk.ConfigError, match="precision must be one of"):
        parse_recipe({"model": "titok-tiny", "train": {"precision": "no"}})


@pytest.mark.parametrize("caps, dtype", [(NATIVE, torch.bfloat16), (EMULATED, torch.float32)])
def test_generate_images_runs_in_the_resolved_precision(cpu, caps, dtype):
    cpu(**caps)
    torch.manual_seed(0)
    gen, tok = tk.build("maskgit-tiny"), tk.build("titok-tiny")
    seen = {"generator": [], "tokenizer": []}
    gen.lm_head.register_forward_hook(lambda m, a, out: seen["generator"].append(out.dtype))
    tok.decoder.register_forward_hook(lambda m, a, out: seen["tokenizer"].append(out.dtype))
    images = tk.generate_images(gen, tok, [1, 2], seed=0, steps=2)
    assert images.dtype == torch.float32 and images.shape == (2, 3, 32, 32)
    assert set(seen["generator"]) == {dtype} and set(seen["tokenizer"]) == {dtype}
    seen = {"generator": [], "tokenizer": []}
    tk.generate_images(gen, tok, [1, 2], seed=0, steps=2, precision="fp32")
    assert set(seen["generator"]) == set(seen["tokenizer"]) == {torch.float32}


@pytest.mark.parametrize("caps, expected", [(NATIVE, "bf16"), (EMULATED, "fp32")])
def test_evaluation_records_the_requested_and_resolved_precision(cpu, caps, expected):
    from tokenkit.evaluation.inception import InceptionConfig, InceptionV3FID
    from tokenkit.evaluation.rate_distortion import rate_distortion

    cpu(**caps)
    tok = tk.build("titok-tiny")
    images = tk.data.sample_images(32, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tk.evaluate_reconstruction(tok, images, metrics="psnr", progress=False)
        assert result.info["precision"] == expected and result.info["precision_requested"] == "auto"
        assert result.info["precision_reason"].startswith(f"precision auto -> {expected}")
        assert f"precision: {expected}" in result.to_markdown()
        fixed = tk.evaluate_reconstruction(tok, images, metrics="psnr", precision="fp32", progress=False)
        assert fixed.info["precision"] == fixed.info["precision_requested"] == "fp32"
        rd = rate_distortion(tok, images, metrics="psnr", progress=False)
        assert rd.info["precision"] == expected and rd.points[0].info["precision"] == expected
        gen = tk.evaluate_generation(tk.build("maskgit-tiny"), tok, num_images=2, batch_size=2, metrics="fid",
                                     reference=images, progress=False, steps=1,
                                     inception_weights=InceptionV3FID(InceptionConfig(weights="random",
                                                                                      input_size=75)))
        assert gen.info["precision"] == expected and gen.info["precision_requested"] == "auto"


def test_demo_records_the_precision(tmp_path, cpu):
    from tokenkit.train.demo import run_demo

    cpu(**EMULATED)
    metrics = run_demo(tmp_path / "demo", steps=2, batch_size=4, progress=False)
    written = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert written["precision"] == metrics["precision"] == "fp32" and written["precision_requested"] == "auto"
    assert "torch CPU capability AVX2, no native bf16" in written["cpu"]


def test_cpu_half_precision_attention_with_autograd_runs_in_fp32():
    """Under CPU autocast with autograd, attention is computed in fp32 (the bf16 kernel is slow there) and
    returned in bf16; its gradients match the fp32 computation to bf16 rounding."""
    from unittest import mock

    import torch.nn.functional as F

    from tokenkit.layers.attention import attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8, requires_grad=True) for _ in range(3))
    seen = []
    real = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(args[0].dtype)
        return real(*args, **kwargs)

    with mock.patch.object(F, "scaled_dot_product_attention", spy):
        out = attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
        with torch.no_grad():
            attention(q.bfloat16(), k.bfloat16(), v.bfloat16())
    assert seen == [torch.float32, torch.float32, torch.bfloat16]  # inference calls the kernel as it is
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    grad = q.grad.clone()
    q.grad = None
    real(q, k, v).sum().backward()
    torch.testing.assert_close(grad, q.grad, atol=0.05, rtol=0.05)
