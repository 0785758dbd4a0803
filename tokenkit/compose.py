"""Compositions by name: [`spec`][tokenkit.compose.spec] expands a named model with knobs into its
spec, and [`build_from_spec`][tokenkit.compose.build_from_spec] builds a spec's modules."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import torch

from tokenkit.errors import ConfigError
from tokenkit.factory import instantiate, on_device
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.registry import get_model
from tokenkit.specs import Spec, TokenizerSpec


def check_knobs(name: str, knobs: Iterable[str]) -> None:
    """Raise unless every name in ``knobs`` is a knob of the named model.

    Raises:
        RegistryError: Unknown model name.
        ConfigError: Naming the unknown knobs and listing the model's knobs.

    Examples:
        >>> check_knobs("titok-b64", ["num_tokens"])
    """
    params = inspect.signature(get_model(name).builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = sorted(set(knobs) - set(params))
    if unknown:
        raise ConfigError(f"model {name!r} has no knob(s) {', '.join(unknown)}; its knobs are {', '.join(params)}")


def spec(name: str, **knobs: Any) -> Spec:
    """The composition of a named model, with knobs overridden.

    Args:
        name: A name from [`list_models`][tokenkit.list_models].
        **knobs: Builder knobs (for TiTok: ``image_size``, ``patch_size``,
            ``num_tokens``, ``encoder_size``, ``decoder_size``, ``quantizer``,
            ``codebook_size``, ``token_dim``, ...); ``None`` values are ignored.
            A builder may declare ``knob_options = {knob: (option, ...)}``: when a knob is
            changed (TiTok's ``quantizer``), the model's registered values of its options
            (``codebook_size``, ``token_dim``, ...) are not carried over, so
            ``tk.spec("titok-tiny", quantizer="gaussian")`` gets the Gaussian defaults.

    Raises:
        RegistryError: Unknown name (closest names suggested).
        ConfigError: Unknown knob or incompatible values.

    Examples:
        >>> import tokenkit as tk
        >>> tk.spec("titok-b64", num_tokens=128).encoder.config["num_tokens"]
        128
    """
    entry = get_model(name)
    knobs = {k: v for k, v in knobs.items() if v is not None}
    check_knobs(name, knobs)
    params = inspect.signature(entry.builder).parameters
    inherited = dict(entry.knobs)
    for knob, options in getattr(entry.builder, "knob_options", {}).items():
        default = params[knob].default if knob in params else None
        if knob in knobs and knobs[knob] != inherited.get(knob, default):
            for option in options:
                inherited.pop(option, None)
    return entry.builder(**{**inherited, **knobs})


def build_from_spec(composition: Spec, *, device: torch.device | str | None = None) -> Any:
    """Build the modules of a spec (random init, training mode as PyTorch builds them)."""
    if isinstance(composition, TokenizerSpec):
        return Tokenizer.from_spec(composition, device=device)
    config = composition.resolve()["generator"]
    with on_device(device):
        model = instantiate("generator", composition.generator.name, config)
    model.spec = composition
    return model
