"""The entry points that build models: [`build`][tokenkit.api.build] (by name or spec, with random
or pretrained weights) and, re-exported here, [`spec`][tokenkit.compose.spec] and
[`from_pretrained`][tokenkit.pretrained.from_pretrained]."""

from __future__ import annotations

import os
from typing import Any, overload

import torch

from tokenkit.compose import build_from_spec, check_knobs, spec
from tokenkit.errors import ConfigError
from tokenkit.kinds import Generator
from tokenkit.models.compile import compile_modules
from tokenkit.models.tokenizer import Tokenizer
from tokenkit.pretrained import from_pretrained, load_pretrained
from tokenkit.specs import GeneratorSpec, Spec, TokenizerSpec
from tokenkit.validation import check_device

__all__ = ["build", "build_from_spec", "check_knobs", "from_pretrained", "spec"]


@overload
def build(name_or_spec: TokenizerSpec, *, pretrained: str | os.PathLike | None = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,  # noqa: A002
          **knobs: Any) -> Tokenizer: ...
@overload
def build(name_or_spec: GeneratorSpec, *, pretrained: str | os.PathLike | None = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,  # noqa: A002
          **knobs: Any) -> Generator: ...
@overload
def build(name_or_spec: str, *, pretrained: str | os.PathLike | None = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,  # noqa: A002
          **knobs: Any) -> Tokenizer | Generator: ...
def build(name_or_spec: str | Spec, *, pretrained: str | os.PathLike | None = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,  # noqa: A002
          **knobs: Any) -> Tokenizer | Generator:
    """Build a tokenizer or a generator by name or from a spec, in eval mode.

    Args:
        name_or_spec: A model name, a [`TokenizerSpec`][tokenkit.specs.TokenizerSpec]
            or a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec].
        pretrained: Weights to load: a file (``.bin``/``.pt``/``.pth``/``.safetensors``,
            official or tokenkit layout), a folder or a Hub repo id (see
            [`from_pretrained`][tokenkit.pretrained.from_pretrained]). Default: random weights.
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

    Examples:
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
