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
from tokenkit.pretrained import from_pretrained, load_pretrained, registered_weights
from tokenkit.registry import list_models
from tokenkit.sources import WeightSource
from tokenkit.specs import GeneratorSpec, Spec, TokenizerSpec
from tokenkit.validation import check_device

__all__ = ["build", "build_from_spec", "check_knobs", "from_pretrained", "spec"]

Pretrained = str | os.PathLike | bool | WeightSource | None
"""What ``build(..., pretrained=...)`` takes: a source (file, folder, Hub id), ``True`` (the model's released
weights), a [`WeightSource`][tokenkit.sources.WeightSource], or ``None`` / ``False`` (random weights)."""


@overload
def build(name_or_spec: TokenizerSpec, *, pretrained: Pretrained = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,
          revision: str | None = None, cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
          local_files_only: bool = False, strict: bool = False, **knobs: Any) -> Tokenizer: ...
@overload
def build(name_or_spec: GeneratorSpec, *, pretrained: Pretrained = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,
          revision: str | None = None, cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
          local_files_only: bool = False, strict: bool = False, **knobs: Any) -> Generator: ...
@overload
def build(name_or_spec: str, *, pretrained: Pretrained = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,
          revision: str | None = None, cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
          local_files_only: bool = False, strict: bool = False, **knobs: Any) -> Tokenizer | Generator: ...
def build(name_or_spec: str | Spec, *, pretrained: Pretrained = None,
          device: torch.device | str | None = None, compile: bool | dict[str, Any] = False,
          revision: str | None = None, cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
          local_files_only: bool = False, strict: bool = False, **knobs: Any) -> Tokenizer | Generator:
    """Build a tokenizer or a generator by name or from a spec, in eval mode.

    Args:
        name_or_spec: A model name, a [`TokenizerSpec`][tokenkit.specs.TokenizerSpec]
            or a [`GeneratorSpec`][tokenkit.specs.GeneratorSpec].
        pretrained: Weights to load: ``True`` for the released weights of a named model (its
            [`WeightSource`][tokenkit.sources.WeightSource], see
            [`list_models(pretrained=True)`][tokenkit.registry.list_models]; fetched from the Hub or its
            cache), a file (``.bin``/``.pt``/``.pth``/``.safetensors``, official or tokenkit layout), a
            folder or a Hub repo id (see [`from_pretrained`][tokenkit.pretrained.from_pretrained]), or a
            ``WeightSource``. Default: random weights.
        device: Device to build on; ``"meta"`` allocates nothing (to count parameters).
        compile: Opt-in ``torch.compile``: ``True``, or a dict of ``torch.compile`` options
            (``{"mode": "max-autotune"}``). A tokenizer compiles its encoder and decoders
            ([`Tokenizer.compile`][tokenkit.models.tokenizer.Tokenizer.compile]); a generator its
            ``forward``. Compilation happens at the first call. See ``docs/guides/performance.md``.
        revision: Hub revision (branch, tag or commit) of a Hub source.
        cache_dir: Hub download cache (default: huggingface_hub's, ``HF_HUB_CACHE``).
        token: Hub token for private repos (default: the logged-in user's).
        local_files_only: Only files already in the Hub cache, never the network (as ``HF_HUB_OFFLINE=1``):
            a missing file fails at once, its error naming every file needed and where to put it.
        strict: Refuse ``pretrained`` weights of another patch grid or token count. By default the
            patch-grid position tables of weights trained at another ``image_size`` are resampled to this
            composition's grid (bicubic, antialiased, as timm's ``resample_abs_pos_embed``), with one
            ``UserWarning``; see [`load_weights`][tokenkit.weights.state.load_weights].
        **knobs: Knob overrides for a named model (see [`spec`][tokenkit.spec]).

    Returns:
        A [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] (tokenizer specs) or the
        generator part, e.g. [`MaskGIT`][tokenkit.generators.maskgit.MaskGIT], with ``.spec`` set;
        in eval mode.

    Raises:
        ConfigError: ``pretrained=True`` for a spec or a model without released weights (the message
            lists the models with weights), or Hub options without ``pretrained``.
        WeightsError: The weights cannot be fetched (offline: one message naming every file needed, its
            download address and where to put it), fail their recorded sha256, or do not fit.

    Examples:
        >>> import tokenkit as tk
        >>> tok = tk.build("titok-l32", device="meta")
        >>> sum(p.numel() for p in tok.parameters())
        641054735

        The released weights, from the Hub cache only (here an empty one, so nothing is loaded):

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as cache:
        ...     tk.build("titok-l32", pretrained=True, cache_dir=cache, local_files_only=True)
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: titok-l32: cannot get 'config.json' and 'model.safetensors' from the Hugging ...
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
    if pretrained is False:
        pretrained = None
    if pretrained is None and (revision is not None or cache_dir is not None or token is not None
                               or local_files_only or strict):
        raise ConfigError("revision, cache_dir, token, local_files_only and strict apply to pretrained weights; pass "
                          "pretrained=True (the model's released weights) or a source")
    if pretrained is True:
        if not isinstance(name_or_spec, str):
            raise ConfigError("pretrained=True loads the released weights of a named model (tk.build(NAME, "
                              "pretrained=True)); a spec has none. Models with weights: "
                              f"{', '.join(list_models(pretrained=True))}")
        pretrained = registered_weights(name_or_spec)
    if pretrained is not None:
        model = load_pretrained(composition, pretrained, device=device, revision=revision, cache_dir=cache_dir,
                                token=token, local_files_only=local_files_only, strict=strict,
                                name=name_or_spec if isinstance(name_or_spec, str) else None)
    else:
        model = build_from_spec(composition, device=device).eval()
    if compile is not False:
        options = {} if compile is True else dict(compile)
        if isinstance(model, Tokenizer):
            model.compile(**options)
        else:
            compile_modules([model], **options)
    return model
