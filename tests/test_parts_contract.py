"""Every registered part satisfies its kind's tensor contract (driven by the registry)."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import tokenkit as tk
from tokenkit.testing import CHECKS, check_part, tiny_part

PARTS = [(kind, name) for kind in CHECKS for name in tk.list_parts(kind)]


@pytest.mark.parametrize(("kind", "name"), PARTS, ids=[f"{k}-{n}" for k, n in PARTS])
@given(rng=st.randoms(use_true_random=False))
def test_part_contract(kind, name, rng):
    check_part(kind, name, rng)


def test_every_kind_with_parts_has_a_check():
    for kind in tk.KINDS:
        if tk.list_parts(kind):
            assert kind in CHECKS, f"parts of kind {kind!r} exist but no contract check does"


def test_requantizing_codes_gives_the_same_indices():
    for name in tk.list_parts("quantizer"):
        quantizer = tk.build_part("quantizer", tiny_part("quantizer", name)).eval()
        if getattr(quantizer, "codebook_size", None) is None or quantizer.config.in_dim != quantizer.config.out_dim:
            continue
        # Inherently impossible for some parts, which say so with `codes_are_fixed_points = False`: FSQ bounds
        # (tanh) before rounding, so a code is bounded again; residual VQ searches the sum of all levels' codes;
        # a learned projection in after one out (vq-ema `codebook_dim`, lfq `dim`) is not the identity.
        if not getattr(quantizer, "codes_are_fixed_points", True):
            continue
        out = quantizer(torch.randn(2, 5, quantizer.config.in_dim))
        assert torch.equal(quantizer(out.codes).indices, out.indices), name
