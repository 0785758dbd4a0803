"""Public boundaries refuse non-finite values with a clear error and accept any float dtype."""

import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tokenkit as tk
from tokenkit.contracts import value_checks
from tokenkit.errors import ContractError

TOK = tk.build("titok-tiny").eval()
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), dtype=st.sampled_from(DTYPES), bad=st.sampled_from([float("nan"), float("inf"),
                                                                                      float("-inf")]),
       where=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 31), st.integers(0, 31)))
def test_non_finite_images_are_refused_naming_the_first_position(batch, dtype, bad, where):
    images = torch.rand(batch, 3, 32, 32).to(dtype)
    position = (where[0] % batch, *where[1:])
    images[position] = bad
    message = r"images contain 1 non-finite value\(s\) .* index " + re.escape(str(position))
    with pytest.raises(ContractError, match=message):
        TOK.tokenize(images)
    with pytest.raises(ContractError, match="non-finite"):
        TOK.encode(images)


@settings(max_examples=10, deadline=None)
@given(dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**16))
def test_any_float_dtype_is_accepted_and_cast(dtype, seed):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    exact = images.to(dtype).float()  # what the model sees after the cast
    ids = TOK.tokenize(images.to(dtype))
    assert ids.dtype == torch.int64 and ids.shape == (2, TOK.num_tokens)
    assert torch.equal(ids, TOK.tokenize(exact))
    codes = TOK.encode(exact).codes.detach()
    assert TOK.decode(codes.to(dtype)).dtype == torch.float32


def test_non_finite_codes_are_refused_and_the_checks_can_be_skipped():
    codes = TOK.encode(torch.rand(1, 3, 32, 32)).codes.detach()
    codes[0, 2, 0] = float("nan")
    with pytest.raises(ContractError, match=r"codes contain 1 non-finite value\(s\).*\(0, 2, 0\)"):
        TOK.decode(codes)
    with value_checks(False):  # the explicit opt-out: no pass over the values
        assert TOK.decode(codes).shape == (1, 3, 32, 32)
    with pytest.raises(ContractError):  # and back on after the block
        TOK.decode(codes)


@pytest.mark.parametrize("stored", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoints_load_as_float32_unless_asked(tmp_path, stored):
    original = tk.build("titok-tiny").eval()
    copy = tk.build("titok-tiny").eval()
    copy.load_state_dict(original.state_dict())
    copy.to(stored).save_pretrained(tmp_path / "half")
    loaded = tk.from_pretrained(tmp_path / "half")
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    expected = {k: v.to(stored).float() for k, v in original.state_dict().items() if v.is_floating_point()}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in expected.items())
    assert loaded.tokenize(torch.rand(1, 3, 32, 32)).shape == (1, loaded.num_tokens)
    kept = tk.from_pretrained(tmp_path / "half", torch_dtype="auto")
    assert {p.dtype for p in kept.parameters()} == {stored}
    chosen = tk.from_pretrained(tmp_path / "half", torch_dtype=torch.float64)
    assert {p.dtype for p in chosen.parameters()} == {torch.float64}
    with pytest.raises(tk.ConfigError, match="torch_dtype must be a floating torch.dtype"):
        tk.from_pretrained(tmp_path / "half", torch_dtype=torch.int8)


GEN = tk.build("maskgit-tiny").eval()


@pytest.mark.parametrize("labels, message", [
    ([], "labels is empty"), (torch.tensor([], dtype=torch.long), "labels is empty"),
    ([1.5], r"integer class ids, got 1\.5 \(float\)"), ([True], r"got True \(bool\)"),
    (torch.tensor([1.0]), "1-D integer tensor"), (torch.tensor([[1]]), "1-D integer tensor"),
    ("3", "got str"), ([99], r"must lie in \[0, 10\)")])
def test_bad_labels_are_refused_naming_the_problem(labels, message):
    with pytest.raises(ContractError, match=message):
        tk.generate_images(GEN, TOK, labels, progress=False)


def test_labels_of_any_integer_kind_are_accepted():
    import numpy as np

    expected = GEN.generate([1, 2], generator=torch.Generator().manual_seed(0))
    for labels in (torch.tensor([1, 2], dtype=torch.int32), np.array([1, 2]), (1, 2)):
        assert torch.equal(GEN.generate(labels, generator=torch.Generator().manual_seed(0)), expected)


@pytest.mark.parametrize("device, message", [("gpu", "is not a device: use 'cpu'"),
                                             ("cuda:x", "is not a device"), (3.5, "is not a device")])
def test_bad_device_strings_are_config_errors(device, message):
    with pytest.raises(tk.ConfigError, match=message):
        tk.build("titok-tiny", device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(tk.ConfigError, match="CUDA is not available here"):
        tk.build("titok-tiny", device="cuda")


@pytest.mark.parametrize(("scale", "shift", "hint"), [(2.0, -1.0, r"\(x \+ 1\) / 2"), (255.0, 0.0, "divide by 255"),
                                                     (1000.0, -500.0, "scale them to \\[0, 1\\]")])
def test_out_of_range_images_get_a_hint_for_their_range(scale, shift, hint):
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * scale + shift
    with pytest.raises(tk.ContractError, match=hint):
        tk.build("titok-tiny").tokenize(images)
