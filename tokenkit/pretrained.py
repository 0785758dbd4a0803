"""Models with weights: [`from_pretrained`][tokenkit.pretrained.from_pretrained] (composition and
weights from a file, a folder, the Hub or a model's recorded release) and
[`load_pretrained`][tokenkit.pretrained.load_pretrained] (a given composition), for tokenizers and
generators alike.

The composition of a source comes from its ``config.json`` (tokenkit's spec or an
official TiTok config), else the spec in a tokenkit safetensors header, else from
matching the parameter names and shapes against the reference models
([`infer_spec`][tokenkit.pretrained.infer_spec]).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import torch
from torch import nn

from tokenkit.compose import build_from_spec, spec
from tokenkit.errors import ConfigError, TokenkitError, WeightsError
from tokenkit.models.official_config import (
    generator_spec_from_official_config,
    official_tree,
    spec_from_official_config,
)
from tokenkit.registry import get_model, list_models
from tokenkit.sources import WeightSource
from tokenkit.specs import Spec
from tokenkit.validation import check_device
from tokenkit.weights import official
from tokenkit.weights.hub import HubOptions, ResolvedSource, resolve_source, resolve_weight_source
from tokenkit.weights.io import load_state_dict
from tokenkit.weights.model_files import is_tokenkit_config, read_spec, stored_spec
from tokenkit.weights.resample import grid_shapes
from tokenkit.weights.state import cast_state_dict, load_weights, resolve_torch_dtype


def _signature(name: str, knobs: tuple) -> tuple[Spec, frozenset]:
    return _cached_signature(name, knobs, get_model(name))


@functools.cache
def _cached_signature(name: str, knobs: tuple, entry: object) -> tuple[Spec, frozenset]:
    """Keyed by the registry entry too, so a re-registered name is not served stale."""
    composition = spec(name, **dict(knobs))
    model = build_from_spec(composition, device="meta")
    return composition, frozenset((k, tuple(v.shape)) for k, v in model.state_dict().items())


def infer_spec(state_dict: Mapping[str, torch.Tensor]) -> Spec:
    """The reference composition whose parameter names and shapes equal ``state_dict``'s.

    Candidates are every [`list_models`][tokenkit.list_models] name, and the
    stage-1 form (no pixel decoder) of the two-stage tokenizers. When several fit (e.g. the 512 px
    ``maskgit-titok-l64-512`` has the layout of the released ``maskgit-titok-b64``), the one with released
    weights is taken.

    Raises:
        WeightsError: No candidate (or more than one) fits; names the closest.
    """
    target = frozenset((k, tuple(v.shape)) for k, v in state_dict.items())
    candidates = [(n, ()) for n in list_models()]
    candidates += [(n, (("pixel_decoder", False),)) for n in list_models()  # stage-1 forms
                   if getattr(_signature(n, ())[0], "pixel_decoder", None) is not None]
    fits, released, best = [], [], None
    for name, knobs in candidates:
        try:
            composition, signature = _signature(name, knobs)
        except TokenkitError:  # a model whose optional package is missing (e.g. tokenkit[text]) cannot be built
            continue
        if signature == target:
            fits.append(composition)
            if get_model(name).weights is not None:
                released.append(composition)
        distance = len(signature ^ target)
        if best is None or distance < best[0]:
            best = (distance, name + ("" if not knobs else f" ({dict(knobs)})"))
    for group in (fits, released):  # several fit: the one with released weights (they were made for it)
        if len({s.to_json() for s in group}) == 1:
            return group[0]
    if fits:
        raise WeightsError("the weights fit several compositions; name one: tk.build(NAME, pretrained=...)")
    raise WeightsError("cannot tell which composition these weights belong to (no config.json and no spec in the "
                       f"file; closest: {best[1]}, {best[0]} keys differ). Use tk.build(NAME, pretrained=SOURCE)")


def spec_from_config(config: Mapping, layout: str = "tokenkit") -> Spec:
    """The spec in a ``config.json``: tokenkit's own, or an official TiTok one.

    An official config holds both the tokenizer and the generator settings; the
    weights' ``layout`` ([`detect_layout`][tokenkit.weights.official.detect_layout])
    decides which composition it describes.

    Raises:
        WeightsError: Neither kind of config.
    """
    if is_tokenkit_config(config):
        return read_spec(config, "config.json")
    if official_tree(config) is not None:
        if layout in official.GENERATOR_LAYOUTS:
            return generator_spec_from_official_config(config, layout)
        return spec_from_official_config(config, text_aware=layout == "tatitok")
    raise WeightsError("config.json is neither a tokenkit spec nor an official TiTok config")


def _load_into(composition: Spec, state_dict: Mapping[str, torch.Tensor], device: torch.device | str | None,
               description: str, torch_dtype: torch.dtype | str | None = torch.float32, *, strict: bool = False,
               checkpoint_grids: Mapping[str, tuple[int, int]] | None = None) -> nn.Module:
    """Build ``composition`` on ``meta`` and take the checkpoint tensors, cast to ``torch_dtype``, as its
    parameters (patch-grid position tables of another grid resampled unless ``strict``, see
    [`load_weights`][tokenkit.weights.state.load_weights])."""
    device = check_device(device)
    state_dict = cast_state_dict(state_dict, resolve_torch_dtype(torch_dtype))
    try:
        state_dict = official.to_tokenkit(state_dict)
    except KeyError as err:
        raise WeightsError(f"{description}: {err.args[0]}") from None
    model = build_from_spec(composition, device="meta")
    try:
        load_weights(model, state_dict, assign=True, strict=strict, checkpoint_grids=checkpoint_grids)
    except WeightsError as err:
        raise WeightsError(f"{description}: {err}") from None
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # non-persistent buffers of a meta-built part: rebuild for real, with the fitted tensors
        fitted = model.state_dict()
        model = build_from_spec(composition)
        load_weights(model, fitted, strict=True)
    model = model.to(device) if device is not None else model
    return model.eval()


def registered_weights(name: str) -> WeightSource:
    """The [`WeightSource`][tokenkit.sources.WeightSource] of a named model: where
    ``tk.build(name, pretrained=True)`` gets its released weights.

    Raises:
        RegistryError: Unknown name.
        ConfigError: The model has no released weights (the message lists the names that have).

    Examples:
        >>> registered_weights("rar-b")
        WeightSource(repo_id='yucornetto/RAR', filename='rar_b.bin', sha256=None, revision=None, config=None)
        >>> registered_weights("titok-tiny")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.ConfigError: model 'titok-tiny' has no released weights to load with pretrained=True; ...
    """
    entry = get_model(name)
    if entry.weights is None:
        raise ConfigError(f"model {name!r} has no released weights to load with pretrained=True; pass a file, "
                          "folder or Hub id instead (pretrained='...'). Models with weights: "
                          f"{', '.join(list_models(pretrained=True))}")
    return entry.weights


def _checkpoint_grids(resolved: ResolvedSource, composition: Spec) -> dict[str, tuple[int, int]] | None:
    """The patch grids of the checkpoint's tables when its tokenkit spec is saved with it and differs from
    ``composition`` (else ``None``: the grids are taken as square)."""
    try:
        config = resolved.config
        saved = read_spec(config, "config.json") if config is not None and is_tokenkit_config(config) else None
        saved = saved if saved is not None else stored_spec(resolved)
        if saved is None or saved == composition:
            return None
        return grid_shapes(build_from_spec(saved, device="meta"))
    except (ValueError, TypeError):  # a spec this installation cannot read or build (TokenkitError): square grids
        return None


def load_pretrained(composition: Spec, source: str | os.PathLike | WeightSource, *,
                    device: torch.device | str | None = None, revision: str | None = None,
                    torch_dtype: torch.dtype | str | None = torch.float32,
                    cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                    local_files_only: bool = False, name: str | None = None, strict: bool = False) -> nn.Module:
    """Build ``composition`` with the weights of ``source`` (official or tokenkit layout, or a
    [`WeightSource`][tokenkit.sources.WeightSource]), in eval mode, in ``torch_dtype`` (the options as in
    [`from_pretrained`][tokenkit.pretrained.from_pretrained]; ``name``: the model's name, for messages).

    Weights of another resolution load into ``composition``: their patch-grid position tables are
    resampled to its grid (bicubic, antialiased), with one ``UserWarning``; ``strict=True`` refuses them
    instead. See [`load_weights`][tokenkit.weights.state.load_weights] for what else is refused.

    Examples:
        >>> import tempfile, warnings, tokenkit as tk
        >>> with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")  # "resampled encoder.positional_embedding ... from 4x4 to 6x6"
        ...     _ = tk.save_pretrained(tk.build("titok-tiny"), tmp)  # trained at 32 x 32
        ...     tok = load_pretrained(tk.spec("titok-tiny", image_size=48), tmp)
        >>> tok.detokenize(tok.tokenize(torch.rand(1, 3, 48, 48))).shape
        torch.Size([1, 3, 48, 48])
    """
    hub = HubOptions(revision, cache_dir, token, local_files_only)
    if isinstance(source, WeightSource):
        resolved = resolve_weight_source(source, hub, what=name)
    else:
        resolved = resolve_source(source, revision, hub=hub)
    return _load_into(composition, load_state_dict(resolved.weights), device, resolved.description, torch_dtype,
                      strict=strict, checkpoint_grids=_checkpoint_grids(resolved, composition))


def from_pretrained(source: str | os.PathLike, *, device: torch.device | str | None = None,
                    revision: str | None = None, torch_dtype: torch.dtype | str | None = torch.float32,
                    cache_dir: str | os.PathLike | None = None, token: str | bool | None = None,
                    local_files_only: bool = False, strict: bool = False) -> nn.Module:
    """Load a tokenizer or generator, composition and weights, from a file, a folder, a Hub repo or, by
    name, the released weights of a reference model (``tk.from_pretrained("titok-l32")`` is
    ``tk.build("titok-l32", pretrained=True)``; a file or folder of that name comes first).

    The composition comes from ``config.json`` (tokenkit's spec, or the official
    TiTok config: legacy or not, VQ or VAE, sizes and token count, or the
    generator section for ImageBert / UViTBert weights), else from the spec stored
    in a tokenkit safetensors file, else from matching the parameter names and
    shapes against the reference models.

    Args:
        source: File, folder, ``owner/name`` Hub repo, ``owner/name/file``, or the name of a model with
            released weights ([`list_models(pretrained=True)`][tokenkit.registry.list_models]).
        device: Where to put the model (default CPU).
        revision: Hub revision (branch, tag or commit).
        torch_dtype: The dtype of the model's floating tensors: float32 by default, whatever the
            file stores (an fp16 or bf16 checkpoint is cast up); ``torch.bfloat16``, ``"fp16"``, ...
            choose another; ``"auto"`` or ``None`` keeps the dtypes stored in the file.
        cache_dir: Hub download cache (default: huggingface_hub's, ``HF_HOME``).
        token: Hub token for private repos (default: the logged-in user's).
        local_files_only: Only files already in the Hub cache; never the network.
        strict: Refuse weights whose patch grid or token count differ from the composition's (a
            released model loaded by name) instead of resampling them (see
            [`load_weights`][tokenkit.weights.state.load_weights]).

    Returns:
        A [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] or a generator, in eval mode.

    Raises:
        WeightsError: Unreadable or unsafe file, unknown composition, weights that
            do not fit (missing / unexpected / mis-shaped keys by name), or a failed download.

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     _ = tk.save_pretrained(tk.build("titok-tiny"), tmp)
        ...     tk.from_pretrained(tmp).spec == tk.spec("titok-tiny")
        True
    """
    if isinstance(source, str) and "/" not in source and not os.path.exists(source) and source in list_models():
        return load_pretrained(spec(source), registered_weights(source), device=device, revision=revision,
                               torch_dtype=torch_dtype, cache_dir=cache_dir, token=token,
                               local_files_only=local_files_only, name=source, strict=strict)
    resolved = resolve_source(source, revision, hub=HubOptions(None, cache_dir, token, local_files_only))
    state_dict = load_state_dict(resolved.weights)
    layout = official.detect_layout(state_dict)
    in_file = stored_spec(resolved)
    composition = spec_from_config(resolved.config, layout) if resolved.config is not None else in_file
    if resolved.config is not None and in_file is not None and in_file != composition:
        raise WeightsError(f"{resolved.description}: config.json and {resolved.weights.name} hold different "
                           "specs (an interrupted save?)")
    if composition is None:
        composition = infer_spec(official.to_tokenkit(state_dict))
    return _load_into(composition, state_dict, device, resolved.description, torch_dtype, strict=strict)
