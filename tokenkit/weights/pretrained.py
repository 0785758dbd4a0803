"""``from_pretrained``, ``save_pretrained``, ``push_to_hub`` and strict weight loading.

These work for every composition: tokenizers ([`TokenizerSpec`][tokenkit.specs.TokenizerSpec])
and generators ([`GeneratorSpec`][tokenkit.specs.GeneratorSpec]); a model's
composition is its ``.spec``.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tokenkit.errors import ConfigError, WeightsError
from tokenkit.validation import check_device
from tokenkit.registry import list_models
from tokenkit.specs import GeneratorSpec, Spec, TokenizerSpec, spec_from_dict
from tokenkit.weights import official
from tokenkit.weights.hub import CONFIG_NAME, ResolvedSource, resolve_source
from tokenkit.weights.io import load_state_dict, read_safetensors_metadata, save_json, save_safetensors
from tokenkit.weights.official_config import (
    generator_spec_from_official_config,
    official_tree,
    spec_from_official_config,
)

SPEC_METADATA_KEY = "tokenkit_spec"
"""safetensors header entry holding the spec JSON, so a saved file alone can be rebuilt."""

_LIST_LIMIT = 12


def _names(keys: list[str]) -> str:
    more = f" ... and {len(keys) - _LIST_LIMIT} more" if len(keys) > _LIST_LIMIT else ""
    return ", ".join(keys[:_LIST_LIMIT]) + more


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, assign: bool = False) -> None:
    """Load ``state_dict`` into ``model`` strictly: every key must exist with the same shape.

    Args:
        model: The module.
        state_dict: tokenkit-layout state dict.
        assign: Replace the parameters by the given tensors (for models built on ``meta``).

    Raises:
        WeightsError: Listing missing, unexpected and mis-shaped keys by name.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(f"{k} (checkpoint {tuple(state_dict[k].shape)}, model {tuple(expected[k].shape)})"
                       for k in set(expected) & set(state_dict) if state_dict[k].shape != expected[k].shape)
    if missing or unexpected or misshaped:
        lines = [f"the weights do not fit this {type(model).__name__}:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                lines.append(f"  {len(keys)} {title}: {_names(keys)}")
        raise WeightsError("\n".join(lines))
    model.load_state_dict(state_dict, strict=True, assign=assign)


def _build(spec: Spec, device: torch.device | str | None = None) -> nn.Module:
    from tokenkit.api import build_from_spec

    return build_from_spec(spec, device=device)


def _signature(name: str, knobs: tuple) -> tuple[Spec, frozenset]:
    from tokenkit.registry import get_model

    return _cached_signature(name, knobs, get_model(name))


@functools.lru_cache(maxsize=None)
def _cached_signature(name: str, knobs: tuple, entry: object) -> tuple[Spec, frozenset]:
    """Keyed by the registry entry too, so a re-registered name is not served stale."""
    from tokenkit.api import spec

    composition = spec(name, **dict(knobs))
    model = _build(composition, device="meta")
    return composition, frozenset((k, tuple(v.shape)) for k, v in model.state_dict().items())


def infer_spec(state_dict: Mapping[str, torch.Tensor]) -> Spec:
    """The reference composition whose parameter names and shapes equal ``state_dict``'s.

    Candidates are every [`list_models`][tokenkit.list_models] name, and the
    stage-1 form (no pixel decoder) of the two-stage tokenizers.

    Raises:
        WeightsError: No candidate (or more than one) fits; names the closest.
    """
    target = frozenset((k, tuple(v.shape)) for k, v in state_dict.items())
    candidates = [(n, ()) for n in list_models()]
    candidates += [(n, (("pixel_decoder", False),)) for n in list_models()  # stage-1 forms
                   if getattr(_signature(n, ())[0], "pixel_decoder", None) is not None]
    fits, best = [], None
    for name, knobs in candidates:
        composition, signature = _signature(name, knobs)
        if signature == target:
            fits.append(composition)
        distance = len(signature ^ target)
        if best is None or distance < best[0]:
            best = (distance, name + ("" if not knobs else f" ({dict(knobs)})"))
    if len({s.to_json() for s in fits}) == 1:
        return fits[0]
    if fits:
        raise WeightsError("the weights fit several compositions; name one: tk.build(NAME, pretrained=...)")
    raise WeightsError("cannot tell which composition these weights belong to (no config.json and no spec in the "
                       f"file; closest: {best[1]}, {best[0]} keys differ). Use tk.build(NAME, pretrained=SOURCE)")


def spec_from_config(config: Mapping, layout: str = "tokenkit") -> Spec:
    """The spec in a ``config.json``: tokenkit's own, or an official TiTok one.

    An official config holds both the tokenizer and the generator settings; the
    weights' ``layout`` ([`detect_layout`][tokenkit.weights.official.detect_layout])
    decides which composition it describes.
    """
    if str(config.get("format", "")).startswith("tokenkit."):
        return _tokenkit_spec(config, "config.json")
    if official_tree(config) is not None:
        if layout in official.GENERATOR_LAYOUTS:
            return generator_spec_from_official_config(config)
        return spec_from_official_config(config)
    raise WeightsError("config.json is neither a tokenkit spec nor an official TiTok config")


def _tokenkit_spec(data: Mapping, where: str) -> Spec:
    try:
        return spec_from_dict(data)
    except ConfigError as err:
        raise WeightsError(f"{where} holds a spec that cannot be built here: {err} (a part registered by "
                           "another package must be imported or installed before loading)") from None


def _file_spec(source: ResolvedSource) -> Spec | None:
    if source.weights.suffix.lower() != ".safetensors":
        return None
    text = read_safetensors_metadata(source.weights).get(SPEC_METADATA_KEY)
    return None if text is None else _tokenkit_spec(json.loads(text), source.weights.name)


TORCH_DTYPES: dict[str, torch.dtype | None] = {
    "float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
    "float16": torch.float16, "fp16": torch.float16, "float64": torch.float64, "auto": None}
"""Names ``torch_dtype`` accepts besides a ``torch.dtype`` (``"auto"``: the dtypes stored in the file)."""


def resolve_torch_dtype(torch_dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``torch_dtype`` as a floating ``torch.dtype``, or ``None`` for the checkpoint's own dtypes.

    Raises:
        ConfigError: Not a floating dtype or one of the names in ``TORCH_DTYPES``.
    """
    if torch_dtype is None or isinstance(torch_dtype, torch.dtype) and torch_dtype.is_floating_point:
        return torch_dtype
    if isinstance(torch_dtype, str) and torch_dtype in TORCH_DTYPES:
        return TORCH_DTYPES[torch_dtype]
    raise ConfigError(f"torch_dtype must be a floating torch.dtype or one of {', '.join(TORCH_DTYPES)}, "
                      f"got {torch_dtype!r}")


def _cast(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() and v.dtype != dtype else v
            for k, v in state_dict.items()}


def _load_into(spec: Spec, state_dict: Mapping[str, torch.Tensor], device: torch.device | str | None,
               description: str, torch_dtype: torch.dtype | str | None = torch.float32) -> nn.Module:
    """Build ``spec`` on ``meta`` and take the checkpoint tensors, cast to ``torch_dtype``, as its parameters."""
    device = check_device(device)
    state_dict = _cast(state_dict, resolve_torch_dtype(torch_dtype))
    try:
        state_dict = official.to_tokenkit(state_dict)
    except KeyError as err:
        raise WeightsError(f"{description}: {err.args[0]}") from None
    model = _build(spec, device="meta")
    try:
        load_weights(model, state_dict, assign=True)
    except WeightsError as err:
        raise WeightsError(f"{description}: {err}") from None
    leftover = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if leftover:  # non-persistent buffers of a meta-built part: rebuild for real
        model = _build(spec)
        load_weights(model, state_dict)
    model = model.to(device) if device is not None else model
    return model.eval()


def load_pretrained(spec: Spec, source: str | os.PathLike, *, device: torch.device | str | None = None,
                    revision: str | None = None, torch_dtype: torch.dtype | str | None = torch.float32) -> nn.Module:
    """Build ``spec`` with the weights of ``source`` (official or tokenkit layout), in eval mode, in
    ``torch_dtype`` (see [`from_pretrained`][tokenkit.weights.pretrained.from_pretrained])."""
    resolved = resolve_source(source, revision)
    return _load_into(spec, load_state_dict(resolved.weights), device, resolved.description, torch_dtype)


def from_pretrained(source: str | os.PathLike, *, device: torch.device | str | None = None,
                    revision: str | None = None, torch_dtype: torch.dtype | str | None = torch.float32) -> nn.Module:
    """Load a tokenizer or generator, composition and weights, from a file, a folder or a Hub repo.

    The composition comes from ``config.json`` (tokenkit's spec, or the official
    TiTok config: legacy or not, VQ or VAE, sizes and token count, or the
    generator section for ImageBert / UViTBert weights), else from the spec stored
    in a tokenkit safetensors file, else from matching the parameter names and
    shapes against the reference models.

    Args:
        source: File, folder, ``owner/name`` Hub repo or ``owner/name/file``.
        device: Where to put the model (default CPU).
        revision: Hub revision (branch, tag or commit).
        torch_dtype: The dtype of the model's floating tensors: float32 by default, whatever the
            file stores (an fp16 or bf16 checkpoint is cast up); ``torch.bfloat16``, ``"fp16"``, ...
            choose another; ``"auto"`` or ``None`` keeps the dtypes stored in the file.

    Returns:
        A [`Tokenizer`][tokenkit.models.tokenizer.Tokenizer] or a generator, in eval mode.

    Raises:
        WeightsError: Unreadable or unsafe file, unknown composition, weights that
            do not fit (missing / unexpected / mis-shaped keys by name), or a failed download.
    """
    resolved = resolve_source(source, revision)
    state_dict = load_state_dict(resolved.weights)
    layout = official.detect_layout(state_dict)
    in_file = _file_spec(resolved)
    spec = spec_from_config(resolved.config, layout) if resolved.config is not None else in_file
    if resolved.config is not None and in_file is not None and in_file != spec:
        raise WeightsError(f"{resolved.description}: config.json and {resolved.weights.name} hold different "
                           "specs (an interrupted save?)")
    if spec is None:
        spec = infer_spec(official.to_tokenkit(state_dict))
    return _load_into(spec, state_dict, device, resolved.description, torch_dtype)


def spec_of(model: nn.Module) -> Spec:
    """The composition of a built model: its ``.spec``, or (for a bare part) a spec made from its config."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, (TokenizerSpec, GeneratorSpec)):
        return spec
    if getattr(model, "part_kind", None) == "generator":
        import dataclasses

        from tokenkit.specs import Part

        config = model.config
        return GeneratorSpec(Part(model.part_name, **{f.name: getattr(config, f.name)
                                                     for f in dataclasses.fields(config)}))
    raise WeightsError(f"{type(model).__name__} has no tokenkit spec; build it with tk.build")


def save_pretrained(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``config.json`` (the spec) into ``directory``.

    Each file is written atomically, weights first, so an interrupted save never
    leaves a partial file; the spec is also stored in the safetensors header.

    Returns:
        The folder, loadable with [`from_pretrained`][tokenkit.weights.pretrained.from_pretrained].
    """
    directory = Path(directory)
    spec = spec_of(model).to_dict()
    save_safetensors(model.state_dict(), directory / "model.safetensors",
                     metadata={"format": "pt", SPEC_METADATA_KEY: json.dumps(spec)})
    save_json(spec, directory / CONFIG_NAME)
    return directory


def push_to_hub(model: nn.Module, repo_id: str, *, private: bool | None = None, token: str | None = None,
                commit_message: str = "Upload tokenkit model", revision: str | None = None,
                api: Any = None) -> str:
    """Save ``model`` and upload it to the Hub repo ``repo_id`` (created if needed).

    Args:
        model: A tokenizer or generator built by tokenkit.
        repo_id: ``owner/name``.
        private: Visibility of a newly created repo.
        token: Hub token (default: the logged-in user's).
        commit_message: Commit message.
        revision: Branch to push to.
        api: A ``huggingface_hub.HfApi`` (for tests or custom endpoints).

    Returns:
        The URL of the commit.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, token=token)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(model, tmp)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message,
                                 revision=revision, token=token)
    return str(getattr(info, "commit_url", info))
