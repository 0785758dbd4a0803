"""Top-level entry points: [`spec`][tokenkit.spec] and [`build`][tokenkit.build]."""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from typing import Any

import torch

from tokenkit.errors import ConfigError
from tokenkit.factory import instantiate, on_device
from tokenkit.models.compile import compile_modules
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.registry import get_model
from tokenkit.validation import check_device
from tokenkit.specs import GeneratorSpec, Spec, TokenizerSpec


def check_knobs(name: str, knobs: Iterable[str]) -> None:
    """Raise unless every name in ``knobs`` is a knob of the named model.

    Raises:
        RegistryError: Unknown model name.
        ConfigError: Naming the unknown knobs and listing the model's knobs.

    Example:
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

    Example:
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


def build(name_or_spec: str | Spec, *, pretrained: str | os.PathLike | None = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,  # noqa: A002
          **knobs: Any) -> Any:
    """Build a tokenizer or a generator by name or from a spec, in eval mode.

    Args:
        name_or_spec: A model name, a [`TokenizerSpec`][tokenkit.specs.TokenizerSpec]
            or a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec].
        pretrained: Weights to load: a file (``.bin``/``.pt``/``.pth``/``.safetensors``,
            official or tokenkit layout), a folder or a Hub repo id (see
            [`from_pretrained`][tokenkit.weights.pretrained.from_pretrained]). Default: random weights.
        device: Device to build on; ``"meta"`` allocates nothing (to count parameters).
        compile: Opt-in ``torch.compile``: ``True``, or a dict of ``torch.compile`` options
            (``{"mode": "max-autotune"}``). A tokenizer compiles its encoder and decoders
            ([`Tokenizer.compile`][tokenkit.models.tokenizer.Tokenizer.compile]); a generator its
            ``forward``. Compilation happens at the first call. See ``docs/guides/performance.md``.
        **knobs: Knob overrides for a named model (see [`spec`][tokenkit.spec]).

    Returns:
        A [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] (tokenizer specs) or the
        generator part, e.g. [`MaskGIT`][tokenkit.generators.maskgit.MaskGIT], with ``.spec`` set;
        in eval mode.

    Example:
        >>> import tokenkit as tk
        >>> tok = tk.build("titok-l32", device="meta")
        >>> sum(p.numel() for p in tok.parameters())
        641054735
    """
    if isinstance(name_or_spec, str):
        composition = spec(name_or_spec, **knobs)
    elif isinstance(name_or_spec, (TokenizerSpec, GeneratorSpec)):
        if knobs:
            raise ConfigError(f"knobs ({', '.join(knobs)}) apply to named models; edit a spec with spec.replace(...)")
        composition = name_or_spec
    else:
        raise ConfigError(f"build() takes a model name or a spec, got {type(name_or_spec).__name__}")
    if compile is not False and not isinstance(compile, (bool, dict)):
        raise ConfigError(f"compile must be True, False or a dict of torch.compile options, got {compile!r}")
    device = check_device(device)
    if pretrained is not None:
        from tokenkit.weights.pretrained import load_pretrained

        model = load_pretrained(composition, pretrained, device=device)
    else:
        model = build_from_spec(composition, device=device).eval()
    if compile is not False:
        options = {} if compile is True else dict(compile)
        if isinstance(model, Tokenizer):
            model.compile(**options)
        else:
            compile_modules([model], **options)
    return model


def build_from_spec(composition: Spec, *, device: torch.device | str | None = None) -> Any:
    """Build the modules of a spec (random init, training mode as PyTorch builds them)."""
    if isinstance(composition, TokenizerSpec):
        return Tokenizer.from_spec(composition, device=device)
    config = composition.resolve()["generator"]
    with on_device(device):
        model = instantiate("generator", composition.generator.name, config)
    model.spec = composition
    return model
