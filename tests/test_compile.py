"""Opt-in torch.compile: tok.compile() / tk.build(..., compile=...) and the error where no compiler exists."""

import pytest
import torch

import tokenkit as tk
import tokenkit.models.compile as tk_compile
from tokenkit.errors import ConfigError


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(2, 3, 32, 32)


def test_missing_cxx_compiler_is_a_config_error_naming_it(monkeypatch):
    monkeypatch.setattr(tk_compile, "find_cxx_compiler", lambda: None)
    tok = tk.build("titok-tiny")
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        tok.compile()
    with pytest.raises(ConfigError, match="C\\+\\+ compiler"):
        tk.build("titok-tiny", compile=True)
    # backends that generate no code need no compiler
    assert tok.compile(backend="eager") is tok


def test_missing_triton_is_named_for_cuda_modules(monkeypatch):
    monkeypatch.setattr(tk_compile, "has_triton", lambda: False)
    with pytest.raises(ConfigError, match="Triton"):
        tk_compile.check_compile_backend("inductor", [torch.device("cuda")])


def test_bad_compile_argument():
    with pytest.raises(ConfigError, match="compile must be"):
        tk.build("titok-tiny", compile="yes")


def test_build_compile_wraps_the_encoder_and_decoders():
    """The compile plumbing (which modules, options); compilation itself happens at the first call."""
    tok = tk.build("titok-tiny", compile={"backend": "eager"})
    assert tok.encoder._compiled_call_impl is not None and tok.decoder._compiled_call_impl is not None
    assert tok.quantizer._compiled_call_impl is None and tok.pixel_decoder is None
    gen = tk.build("maskgit-tiny", compile={"backend": "eager"}, device="meta")
    assert gen._compiled_call_impl is not None


@pytest.mark.skipif(tk_compile.find_cxx_compiler() is None,
                    reason="no C++ compiler for torch.compile's inductor backend (install g++ or set CXX)")
def test_inductor_compiled_tokenizer_matches_eager(images):
    torch.manual_seed(0)
    tok = tk.build("titok-tiny")
    ids = tok.tokenize(images)
    rec = tok.detokenize(ids)
    assert tok.compile() is tok
    assert torch.equal(tok.tokenize(images), ids)
    torch.testing.assert_close(tok.detokenize(ids), rec, rtol=0, atol=1e-5)
