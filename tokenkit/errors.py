"""Exceptions raised by tokenkit. All derive from ``ValueError`` so callers can
catch bad input uniformly.

Examples:
    >>> import tokenkit as tk
    >>> try:
    ...     tk.build("titok-b46")
    ... except tk.TokenkitError as err:  # RegistryError, ConfigError, ContractError, WeightsError
    ...     print(type(err).__name__, "-", err)
    RegistryError - no model named 'titok-b46'. Did you mean 'titok-b64', ...?
"""

from __future__ import annotations


class TokenkitError(ValueError):
    """Base class of tokenkit's errors.

    Examples:
        >>> issubclass(ConfigError, TokenkitError) and issubclass(TokenkitError, ValueError)
        True
    """


class RegistryError(TokenkitError, KeyError):
    """Unknown or duplicate part / model name.

    Examples:
        >>> import tokenkit as tk
        >>> tk.list_parts("tokenizers")
        Traceback (most recent call last):
        ...
        tokenkit.errors.RegistryError: unknown part kind 'tokenizers'; kinds are backbone, encoder, quantizer, decoder, generator, loss, discriminator, dataset, feature, text_encoder
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(TokenkitError):
    """A part config or a composition is invalid (checked before building).

    Examples:
        >>> import tokenkit as tk
        >>> tk.spec("titok-tiny", colour=3)
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: model 'titok-tiny' has no knob(s) colour; its knobs are ...
    """


class ContractError(TokenkitError):
    """A tensor given to a public method breaks its documented contract.

    Examples:
        >>> import torch, tokenkit as tk
        >>> tk.build("titok-tiny").tokenize(torch.rand(1, 3, 33, 33))
        Traceback (most recent call last):
        ...
        tokenkit.errors.ContractError: ...
    """


class WeightsError(TokenkitError):
    """A weight file or source cannot be read safely, or does not fit the model.

    Examples:
        >>> import torch, tokenkit as tk
        >>> tk.load_weights(torch.nn.Linear(2, 2), {"weight": torch.zeros(2, 2), "bias": torch.zeros(3)})
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: the weights do not fit this Linear:
          1 mis-shaped: bias (checkpoint (3,), model (2,))
    """
