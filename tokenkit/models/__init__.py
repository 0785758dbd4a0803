"""Compositions: the [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] and named reference models."""

from tokenkit.models.tokenizer import Tokenizer
from tokenkit.registry import import_submodules

__all__ = ["Tokenizer", "generators", "maskgit_vqgan", "titok"]

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself, so adding a part needs no
edit here."""
