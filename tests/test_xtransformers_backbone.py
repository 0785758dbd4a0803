"""The ``xtransformers`` backbone inside compositions (its contract is checked by test_parts_contract)."""

import pytest
import torch

import tokenkit as tk
from tokenkit.backbones import XTransformersBackbone, XTransformersConfig
from tokenkit.errors import ConfigError

SMALL = dict(width=32, depth=2, heads=4)


def backbone(**options):
    return tk.build_part("backbone", tk.Part("xtransformers", **{**SMALL, **options})).eval()


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_titok_knob_puts_it_in_encoder_and_decoder(images):
    spec = tk.spec("titok-tiny", backbone="xtransformers")
    assert spec.encoder.config["backbone"] == tk.Part("xtransformers", width=64, depth=2, heads=4)
    assert spec.decoder.config["backbone"].name == "xtransformers"
    torch.manual_seed(0)
    tok = tk.build(spec)
    assert isinstance(tok.encoder.backbone, XTransformersBackbone)
    assert isinstance(tok.decoder.backbone, XTransformersBackbone)
    ids = tok.eval().tokenize(images)
    assert ids.shape == (2, tok.num_tokens) and 0 <= ids.min() and ids.max() < tok.codebook_size
    rec = tok.detokenize(ids)
    assert rec.shape == images.shape and 0 <= rec.min() and rec.max() <= 1
    out = tok.train()(images)
    ((out.images - images).square().mean() + out.loss).backward()
    for part in (tok.encoder.backbone, tok.decoder.backbone):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in part.parameters())
    assert tok.encoder.patch_embed.weight.grad.abs().sum() > 0


def test_part_swap_with_options_and_save_round_trip(images, tmp_path):
    part = tk.Part("xtransformers", width=32, depth=2, heads=2, rotary_pos_emb=True, use_rmsnorm=True,
                   ff_glu=True, extra={"ff_swish": True, "attn_gate_values": True})
    spec = tk.spec("titok-tiny")
    spec = spec.replace(encoder=spec.encoder.with_options(backbone=part),
                        decoder=spec.decoder.with_options(backbone=part.with_options(attn_qk_norm=True)))
    assert tk.TokenizerSpec.from_json(spec.to_json()) == spec
    torch.manual_seed(0)
    tok = tk.build(spec).eval()
    tok.save_pretrained(tmp_path)
    again = tk.from_pretrained(tmp_path)
    assert again.spec == spec
    assert torch.equal(again.tokenize(images), tok.tokenize(images))
    assert torch.equal(again(images).images, tok(images).images)


def test_generator_with_it(tmp_path):
    part = tk.Part("xtransformers", width=64, depth=2, heads=4, rotary_pos_emb=True, ff_glu=True)
    torch.manual_seed(0)
    gen = tk.build("maskgit-tiny", backbone=part)
    assert isinstance(gen.backbone, XTransformersBackbone) and gen.backbone.normalized_output
    labels = torch.tensor([0, 3, 7])
    ids = gen.generate(labels, steps=4, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (3, gen.num_tokens) and 0 <= ids.min() and ids.max() < gen.codebook_size
    gen.save_pretrained(tmp_path)
    again = tk.from_pretrained(tmp_path)
    assert torch.equal(again.generate(labels, steps=4, generator=torch.Generator().manual_seed(0)), ids)


@pytest.mark.parametrize("options", [
    dict(), dict(rotary_pos_emb=True), dict(use_rmsnorm=True), dict(ff_glu=True, ff_mult=2.0),
    dict(attn_qk_norm=True), dict(attn_flash=True), dict(residual_attn=True), dict(pre_norm=False),
    dict(sandwich_norm=True), dict(dim_head=16, heads=1), dict(attn_dropout=0.1, ff_dropout=0.1),
    dict(extra=(("use_layerscale", True), ("rel_pos_bias", True), ("rel_pos_kwargs", {}))),
], ids=lambda o: ",".join(o) or "default")
def test_variants_build_and_run(options):
    net = backbone(**options)
    tokens = torch.randn(2, 7, net.width, requires_grad=True)
    out = net.train()(tokens)
    assert out.shape == tokens.shape and torch.isfinite(out).all()
    out.square().mean().backward()
    assert tokens.grad.abs().sum() > 0


def test_rotary_makes_it_position_aware():
    tokens = torch.randn(1, 6, 32).expand(2, -1, -1).clone()
    tokens[1] = tokens[1].flip(0)  # same set of tokens, other order
    for rotary in (False, True):
        torch.manual_seed(0)
        out = backbone(rotary_pos_emb=rotary)(tokens)
        assert torch.allclose(out[0], out[1].flip(0), atol=1e-5) is not rotary  # without positions: equivariant


def test_output_is_normalised_where_x_transformers_normalises():
    tokens = 5 * torch.randn(2, 7, 32) + 3
    for options in (dict(), dict(pre_norm=False), dict(use_rmsnorm=True)):
        net = backbone(**options)
        assert net.normalized_output
        rms = net(tokens).square().mean(-1).sqrt()
        assert torch.allclose(rms, torch.ones_like(rms), atol=1e-2), options  # unit gains at init
    for extra in ((("pre_norm_has_final_norm", False),), (("use_dynamic_tanh", True),)):
        assert not XTransformersConfig(**SMALL, extra=extra).normalized_output


def test_one_head_narrower_than_width_keeps_the_residual_shape():
    net = backbone(width=8, heads=1, dim_head=16)  # x-transformers omits to_out for one head by default
    assert net(torch.randn(2, 3, 8)).shape == (2, 3, 8)


@pytest.mark.parametrize(("options", "message"), [
    (dict(use_rmsnrm=True), r"no option\(s\) use_rmsnrm"),
    (dict(extra=(("use_rmsnrm", True),)),
     r"'use_rmsnrm' is not an x_transformers.Encoder option; did you mean 'use_rmsnorm'"),
    (dict(extra={"attn_qk_nrom": True}), r"'attn_qk_nrom' is not an x_transformers.Encoder option.*'attn_qk_norm'"),
    (dict(extra={"ff_gluu": True}), r"'ff_gluu' is not an x_transformers.Encoder option"),
    (dict(extra={"cross_attn_heads": 2}), r"'cross_attn_heads' is not an x_transformers.Encoder option"),
    (dict(extra={"causal": True}), r"'causal' is not allowed: this backbone is bidirectional"),
    (dict(extra={"use_rmsnorm": True}), r"'use_rmsnorm' is a field of this backbone; set use_rmsnorm="),
    (dict(extra={"attn_dim_head": 8}), r"'attn_dim_head' is a field of this backbone; set dim_head="),
    (dict(extra={"use_scalenorm": True, "use_simple_rmsnorm": True}), r"Encoder rejects extra=.*scalenorm"),
    (dict(extra=(("ff_swish", True), ("ff_swish", False))), r"'ff_swish' is given twice"),
    (dict(attn_flash=True, residual_attn=True), r"attn_flash cannot be combined with residual_attn"),
    (dict(sandwich_norm=True, pre_norm=False), r"sandwich_norm needs pre_norm"),
    (dict(width=30), r"width 30 is not divisible by heads 4"),
    (dict(width=16, rotary_pos_emb=True), r"rotary_pos_emb rotates 2 features per head"),
    (dict(attn_dropout=1.0), r"attn_dropout must be in \[0, 1\)"),
])
def test_bad_options_raise_config_errors_naming_them(options, message):
    with pytest.raises(ConfigError, match=message):
        tk.build_part("backbone", tk.Part("xtransformers", **{**SMALL, **options}))


def test_typo_in_a_composition_fails_before_building():
    spec = tk.spec("titok-tiny", backbone="xtransformers")
    bad = spec.encoder.with_options(backbone=tk.Part("xtransformers", **SMALL, extra={"rotary_pos_embb": True}))
    with pytest.raises(ConfigError, match="rotary_pos_embb"):
        spec.replace(encoder=bad)


def test_values_must_be_json_like():
    with pytest.raises(ValueError, match="'ff_custom_activation' has a value that is not JSON-like"):
        XTransformersConfig(**SMALL, extra={"ff_custom_activation": torch.nn.ReLU()})
