"""Text encoders (kind ``text_encoder``): prompts -> [`TextEmbeddings`][tokenkit.contracts.TextEmbeddings],
the text conditioning of text-aware decoders (TA-TiTok) and text-to-image generators (MaskGen)."""

from tokenkit.registry import import_submodules

MODULES = import_submodules(__name__, __path__)
"""Every module of the package, imported: each part file registers itself."""
