"""Compositions: the [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] and named reference models."""

from tokenkit.models import generators, maskgit_vqgan, titok
from tokenkit.models.tokenizer import Tokenizer

__all__ = ["Tokenizer", "generators", "maskgit_vqgan", "titok"]
