"""Chunked (``batch_size=``) tokenize / detokenize / encode / decode against one batch, and the tensors
the inference entry points return."""

import pytest
import torch
import torch.nn.functional as F

import tokenkit as tk
from tokenkit.errors import ContractError
from tokenkit.models.tokenizer import batch_slices, map_batches

VQGAN_TINY = dict(hidden_channels=16, channel_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=8, norm_groups=8)


@pytest.fixture(scope="module")
def tok():
    torch.manual_seed(0)
    return tk.build("titok-tiny")


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.rand(7, 3, 32, 32)


@pytest.fixture(scope="module")
def two_stage():
    """A tiny legacy TiTok: ViT encoder, proxy head and a VQGAN pixel decoder (upsampling 2**3 = patch 8)."""
    torch.manual_seed(0)
    return tk.build(tk.spec("titok-tiny", legacy=True, l2_norm=True,
                            pixel_decoder=tk.Part("vqgan", codebook_size=1024, **VQGAN_TINY)))


def test_batch_slices():
    assert list(batch_slices(5, 2)) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    assert list(batch_slices(5, None)) == [slice(0, 5)]
    assert list(batch_slices(0, 3)) == [slice(0, 0)]
    for bad in (0, -1, 2.0, True, "4"):
        with pytest.raises(ContractError, match="batch_size"):
            list(batch_slices(5, bad))


@pytest.mark.parametrize("inference", [False, True])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 10, 11])
def test_map_batches_is_bitwise_one_batch(batch_size, inference):
    x = torch.linspace(-3, 3, 10 * 4).reshape(10, 4)
    out = map_batches(lambda c: F.gelu(c) * 3, x, batch_size, inference=inference)
    assert torch.equal(out, F.gelu(x) * 3)
    assert not out.is_inference()


def test_map_batches_keeps_gradients():
    x = torch.randn(5, 3, requires_grad=True)
    map_batches(lambda c: c.square(), x, 2).sum().backward()
    torch.testing.assert_close(x.grad, 2 * x.detach())


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7, 100])
def test_tokenize_and_detokenize_in_chunks_equal_one_batch(tok, images, batch_size):
    ids = tok.tokenize(images)
    assert torch.equal(tok.tokenize(images, batch_size=batch_size), ids)
    rec = tok.detokenize(ids)
    chunked = tok.detokenize(ids, batch_size=batch_size)
    # oneDNN picks convolution kernels by batch size, so a chunk may round differently in the last bit.
    torch.testing.assert_close(chunked, rec, rtol=0, atol=1e-6)
    assert chunked.min() >= 0 and chunked.max() <= 1


@pytest.mark.parametrize("batch_size", [1, 3])
def test_two_stage_chunks_equal_one_batch(two_stage, images, batch_size):
    ids = two_stage.tokenize(images)
    assert torch.equal(two_stage.tokenize(images, batch_size=batch_size), ids)
    torch.testing.assert_close(two_stage.detokenize(ids, batch_size=batch_size), two_stage.detokenize(ids),
                               rtol=0, atol=1e-5)


def test_encode_and_decode_in_chunks(tok, images):
    with torch.no_grad():
        one = tok.encode(images)
        chunked = tok.encode(images, batch_size=3)
        assert torch.equal(chunked.indices, one.indices) and torch.equal(chunked.codes, one.codes)
        # the losses are batch means: the size-weighted mean over chunks is the same number
        torch.testing.assert_close(chunked.loss, one.loss)
        torch.testing.assert_close(chunked.stats["commitment_loss"], one.stats["commitment_loss"])
        assert set(chunked.stats) == set(one.stats)
        torch.testing.assert_close(tok.decode(one.codes, batch_size=2), tok.decode(one.codes), rtol=0, atol=1e-6)


def test_chunked_encode_and_decode_keep_gradients(tok, images):
    x = images.clone().requires_grad_()
    out = tok.decode(tok.encode(x, batch_size=3).codes, batch_size=3)
    assert out.shape == images.shape and out.requires_grad
    out.square().mean().backward()
    assert x.grad is not None and tok.decoder.decoder_embed.weight.grad is not None
    tok.zero_grad(set_to_none=True)


def test_continuous_bottleneck_encodes_in_chunks(images):
    torch.manual_seed(0)
    vae = tk.build("titok-tiny", quantizer="gaussian")
    with torch.no_grad():
        one, chunked = vae.encode(images), vae.encode(images, batch_size=4)
    assert chunked.indices is None
    torch.testing.assert_close(chunked.codes, one.codes, rtol=0, atol=1e-6)


def test_bad_batch_size_is_refused(tok, images):
    with pytest.raises(ContractError, match="batch_size"):
        tok.tokenize(images, batch_size=0)
    with pytest.raises(ContractError, match="batch_size"):
        tok.encode(images, batch_size=-2)


def test_inference_outputs_are_ordinary_tensors(tok, images):
    """tokenize / detokenize run under torch.inference_mode but return tensors usable afterwards."""
    ids = tok.tokenize(images)
    rec = tok.detokenize(ids)
    assert not ids.is_inference() and not rec.is_inference()
    ids += 0  # in-place updates outside inference mode are allowed
    rec.mul_(1.0)
    # as a loss target and as an input that autograd saves
    logits = torch.randn(ids.numel(), tok.codebook_size, requires_grad=True)
    F.cross_entropy(logits, ids.flatten()).backward()
    weight = torch.ones(1, requires_grad=True)
    (rec * weight).sum().backward()
    assert weight.grad is not None and logits.grad is not None
