"""Exceptions raised by tokenkit. All derive from ``ValueError`` so callers can
catch bad input uniformly."""

from __future__ import annotations


class TokenkitError(ValueError):
    """Base class of tokenkit's errors."""


class RegistryError(TokenkitError, KeyError):
    """Unknown or duplicate part / model name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(TokenkitError):
    """A part config or a composition is invalid (checked before building)."""


class ContractError(TokenkitError):
    """A tensor given to a public method breaks its documented contract."""


class WeightsError(TokenkitError):
    """A weight file or source cannot be read safely, or does not fit the model."""
