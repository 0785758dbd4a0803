"""Knobs and part options are discoverable in code: ``tk.knobs``, ``tk.part_options``, and ``Part``
refusing misspelled options when it is made."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tokenkit as tk


def test_every_knob_and_every_part_option_is_documented():
    for name in tk.list_models():
        assert all(k.help for k in tk.knobs(name)), name
    for kind in tk.KINDS:
        for name in tk.list_parts(kind):
            options = tk.part_options(kind, name)
            assert [o.name for o in options] == [f.name for f in dataclasses.fields(tk.registry.get_part(kind,
                                                                                                          name).Config)]
            assert all(o.help for o in options), (kind, name)


def test_knob_defaults_are_the_models_own_values():
    defaults = {k.name: k.default for k in tk.knobs("titok-l32")}
    assert defaults["num_tokens"] == 32 and defaults["legacy"] is True and defaults["encoder_size"] == "large"
    assert tk.spec("titok-l32") == tk.spec("titok-l32", **{k: v for k, v in defaults.items() if v is not None})


def _defaults(kind: str, name: str) -> dict:
    """A part's options at their defaults, from ``part_options`` alone (required ones are left out)."""
    return {o.name: o.default for o in tk.part_options(kind, name)
            if o.default is not dataclasses.MISSING and o.default is not None and not isinstance(o.default, tk.Part)}


@pytest.mark.parametrize("quantizer", ["vq", "fsq", "lfq", "simvq", "gaussian", "rvq"])
def test_a_custom_composition_from_knobs_and_part_options_alone(quantizer):
    """The generic ``titok`` model, shrunk through the knobs ``tk.knobs`` lists and given a quantizer
    whose options come from ``tk.part_options``: it builds and reconstructs with the documented shapes."""
    knobs = {k.name: k for k in tk.knobs("titok")}
    small = {"image_size": 32, "patch_size": 8, "num_tokens": 4, "encoder_size": "tiny", "decoder_size": "tiny"}
    assert set(small) <= set(knobs) and not knobs["legacy"].default  # single-stage by default
    options = _defaults("quantizer", quantizer)
    if "codebook_size" in options:  # keep it small; the option's name and type come from part_options
        options["codebook_size"] = 16 if quantizer != "lfq" else 2 ** 4
    if "dim" in {o.name for o in tk.part_options("quantizer", quantizer)} and quantizer in ("vq", "simvq", "rvq"):
        options["dim"] = 4
    torch.manual_seed(0)
    tok = tk.build("titok", **small, quantizer=tk.Part(quantizer, **options))
    images = torch.rand(2, 3, 32, 32)
    out = tok(images)
    assert out.images.shape == images.shape and out.codes.shape[:2] == (2, 4)
    assert (out.indices is None) == (tok.codebook_size is None)


def test_part_refuses_a_misspelled_option_when_made_and_suggests_the_name():
    with pytest.raises(tk.ConfigError, match=r"part 'vq' has no option\(s\) codebook_siz \(did you mean "
                                             r"'codebook_siz' -> 'codebook_size'\?\); its options are"):
        tk.Part("vq", codebook_siz=16)
    # a name registered in several kinds accepts the options of any of them (the kind comes later)
    assert tk.Part("vqgan", codebook_size=16, hidden_channels=8).config["hidden_channels"] == 8
    # a name registered nowhere (yet: a plug-in) is checked when it is built
    assert tk.Part("not-registered-yet", anything=1).name == "not-registered-yet"


def test_part_checks_options_in_a_fresh_interpreter_too():
    """``import tokenkit`` is lazy; ``tk.Part`` loads the built-in parts first, so the check holds at once."""
    import subprocess
    import sys

    code = "import tokenkit as tk\ntry:\n    tk.Part('vq', codebook_siz=1)\nexcept tk.ConfigError as err:\n    print(err)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "did you mean 'codebook_siz' -> 'codebook_size'" in result.stdout, result.stderr[-2000:]
