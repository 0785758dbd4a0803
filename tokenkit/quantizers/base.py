"""Shared pieces of the quantizer configs."""

from __future__ import annotations


class SameWidth:
    """Config mixin for a quantizer whose latents and codes are both ``dim`` wide."""

    dim: int

    @property
    def in_dim(self) -> int:
        """Latent width the quantizer reads (``dim``)."""
        return self.dim

    @property
    def out_dim(self) -> int:
        """Code width the quantizer writes (``dim``)."""
        return self.dim
