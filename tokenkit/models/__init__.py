"""Compositions: the [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] and named reference models."""

from tokenkit.models import maskgit_vqgan, titok
from tokenkit.models.tokenizer import Tokenizer

__all__ = ["Tokenizer", "maskgit_vqgan", "titok"]
