"""The files of a saved model: ``model.safetensors`` (with the spec in its header) and ``config.json``.

Writing ([`save_pretrained`][tokenkit.weights.model_files.save_pretrained],
[`push_to_hub`][tokenkit.weights.model_files.push_to_hub]) and reading the stored spec
([`stored_spec`][tokenkit.weights.model_files.stored_spec]); building a model from
them is [`tokenkit.from_pretrained`][tokenkit.pretrained.from_pretrained]'s job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from tokenkit.errors import ConfigError, WeightsError
from tokenkit.specs import GeneratorSpec, Part, Spec, TokenizerSpec, spec_from_dict
from tokenkit.weights.hub import CONFIG_NAME, ResolvedSource
from tokenkit.weights.io import atomic_write, read_safetensors_metadata, save_json, save_safetensors

SPEC_METADATA_KEY = "tokenkit_spec"
"""safetensors header entry holding the spec JSON, so a saved file alone can be rebuilt."""

MODEL_CARD_NAME = "README.md"
"""The model card written next to the weights (the Hub shows it as the repo's page)."""


def is_tokenkit_config(config: Mapping[str, Any]) -> bool:
    """Whether a ``config.json`` holds a tokenkit spec (rather than, e.g., an official TiTok config).

    Examples:
        >>> import tokenkit as tk
        >>> is_tokenkit_config(tk.spec("titok-tiny").to_dict())
        True
        >>> is_tokenkit_config({"model": {"vq_model": {"codebook_size": 4096}}})  # an official TiTok config
        False
    """
    return str(config.get("format", "")).startswith("tokenkit.")


def read_spec(data: Mapping[str, Any], where: str) -> Spec:
    """The spec in a tokenkit ``config.json`` or safetensors header; ``where`` names it in errors.

    Raises:
        WeightsError: The spec names parts or options this installation does not have.

    Examples:
        >>> import tokenkit as tk
        >>> data = tk.spec("titok-tiny").to_dict()
        >>> read_spec(data, "config.json") == tk.spec("titok-tiny")
        True
        >>> data["quantizer"] = {"part": "my-quantizer", "config": {}}  # from a plug-in not installed here
        >>> read_spec(data, "config.json")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: config.json holds a spec that cannot be built here: ...
    """
    try:
        return spec_from_dict(data)
    except ConfigError as err:
        raise WeightsError(f"{where} holds a spec that cannot be built here: {err} (a part registered by "
                           "another package must be imported or installed before loading)") from None


def stored_spec(source: ResolvedSource) -> Spec | None:
    """The spec in the header of a tokenkit safetensors file, or ``None`` (other files, other writers).

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> from tokenkit.weights.hub import resolve_source
        >>> model = tk.build("titok-tiny")
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     weights = tk.save_pretrained(model, tmp) / "model.safetensors"
        ...     spec = stored_spec(resolve_source(weights))  # the file alone, without config.json
        >>> spec == model.spec
        True
    """
    if source.weights.suffix.lower() != ".safetensors":
        return None
    text = read_safetensors_metadata(source.weights).get(SPEC_METADATA_KEY)
    return None if text is None else read_spec(json.loads(text), source.weights.name)


def spec_of(model: nn.Module) -> Spec:
    """The composition of a built model: its ``.spec``, or (for a bare generator part) a spec made from its config.

    Raises:
        WeightsError: The model carries no spec (it was not built by tokenkit).

    Examples:
        >>> import torch, tokenkit as tk
        >>> spec_of(tk.build("titok-tiny")) == tk.spec("titok-tiny")
        True
        >>> spec_of(torch.nn.Linear(2, 2))
        Traceback (most recent call last):
        ...
        tokenkit.errors.WeightsError: Linear has no tokenkit spec; build it with tk.build
    """
    spec = getattr(model, "spec", None)
    if isinstance(spec, (TokenizerSpec, GeneratorSpec)):
        return spec
    if getattr(type(model), "part_kind", None) == "generator":
        config = model.config
        return GeneratorSpec(Part(type(model).part_name, **{f.name: getattr(config, f.name)
                                                            for f in dataclasses.fields(config)}))
    raise WeightsError(f"{type(model).__name__} has no tokenkit spec; build it with tk.build")


def model_card(model: nn.Module, source: str | None = None) -> str:
    """A Hub model card (``README.md``) for ``model``: ``library_name: tokenkit`` metadata, what the
    model is, its parameter count, how to load it, where its weights came from and its spec.

    Examples:
        >>> import tokenkit as tk
        >>> card = model_card(tk.build("titok-tiny"), source="trained on the bundled photographs")
        >>> card.splitlines()[:3]
        ['---', 'library_name: tokenkit', 'tags:']
        >>> [line for line in card.splitlines() if line.startswith(("Composition", "Weights"))]
        ['Composition: vit1d encoder -> vq bottleneck -> vit1d decoder.', 'Weights: trained on the bundled photographs.']
    """
    spec = spec_of(model)
    kind = "generator" if isinstance(spec, GeneratorSpec) else "tokenizer"
    tags = ["tokenkit", "image-tokenizer" if kind == "tokenizer" else "image-generation"]
    params = sum(p.numel() for p in model.parameters())
    if isinstance(spec, TokenizerSpec):
        parts = f"{spec.encoder.name} encoder -> {spec.quantizer.name} bottleneck -> {spec.decoder.name} decoder"
        parts += f" -> {spec.pixel_decoder.name} pixel decoder" if spec.pixel_decoder is not None else ""
    else:
        parts = f"{spec.generator.name} generator"
    lines = ["---", "library_name: tokenkit", "tags:", *(f"- {t}" for t in tags), "---", "",
             f"# A tokenkit {kind}", "", f"Composition: {parts}.", "", f"Parameters: {params:,}.", ""]
    if source:
        lines += [f"Weights: {source}.", ""]
    lines += ["Load it with [tokenkit](https://pypi.org/project/tokenkit/):", "", "```python", "import tokenkit as tk",
              "", 'model = tk.from_pretrained("THIS_REPO_OR_FOLDER")', "```", "", "## Spec", "", "```json",
              json.dumps(spec.to_dict(), indent=2), "```", ""]
    return "\n".join(lines)


def save_pretrained(model: nn.Module, directory: str | os.PathLike, *, source: str | None = None) -> Path:
    """Write ``model.safetensors``, ``config.json`` (the spec) and a model card ``README.md`` into ``directory``.

    Each file is written atomically, weights first, so an interrupted save never
    leaves a partial file; the spec is also stored in the safetensors header. A
    ``README.md`` that tokenkit did not write (no ``library_name: tokenkit``) is kept.

    Args:
        model: A tokenizer or generator built by tokenkit.
        directory: The folder (created if needed).
        source: Where the weights came from, for the model card (e.g. a training run or a paper).

    Returns:
        The folder, loadable with [`from_pretrained`][tokenkit.pretrained.from_pretrained].

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = tk.save_pretrained(tk.build("titok-tiny"), tmp)
        ...     sorted(p.name for p in folder.iterdir())
        ['README.md', 'config.json', 'model.safetensors']
    """
    directory = Path(directory)
    spec = spec_of(model).to_dict()
    save_safetensors(model.state_dict(), directory / "model.safetensors",
                     metadata={"format": "pt", SPEC_METADATA_KEY: json.dumps(spec)})
    save_json(spec, directory / CONFIG_NAME)
    card = directory / MODEL_CARD_NAME
    if not card.exists() or "library_name: tokenkit" in card.read_text(errors="replace"):
        text = model_card(model, source)
        atomic_write(card, lambda tmp: Path(tmp).write_text(text))
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

    Examples:
        With a stand-in for ``huggingface_hub.HfApi`` (a real push needs ``hf auth login``):

        >>> import os, tokenkit as tk
        >>> class Hub:
        ...     def create_repo(self, repo_id, **kwargs):
        ...         pass
        ...     def upload_folder(self, repo_id, folder_path, **kwargs):
        ...         return f"https://huggingface.co/{repo_id}: " + ", ".join(sorted(os.listdir(folder_path)))
        >>> tk.push_to_hub(tk.build("titok-tiny"), "me/my-tokenizer", api=Hub())
        'https://huggingface.co/me/my-tokenizer: README.md, config.json, model.safetensors'
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


class SaveMixin:
    """``save_pretrained`` / ``push_to_hub`` as methods of tokenkit's model classes (writing only;
    loading is [`tokenkit.from_pretrained`][tokenkit.pretrained.from_pretrained]).

    Examples:
        >>> import tempfile, tokenkit as tk
        >>> model = tk.build("titok-tiny")
        >>> isinstance(model, SaveMixin)
        True
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     folder = model.save_pretrained(tmp, source="an example")
        ...     loaded = tk.from_pretrained(folder)
        ...     sorted(p.name for p in folder.iterdir())
        ['README.md', 'config.json', 'model.safetensors']
        >>> loaded.spec == model.spec
        True
        >>> model.push_to_hub("me/my-tokenizer", private=True)  # doctest: +SKIP
        'https://huggingface.co/me/my-tokenizer/commit/...'
    """

    def save_pretrained(self, directory: str | os.PathLike, *, source: str | None = None) -> Path:
        """Write ``model.safetensors``, ``config.json`` and ``README.md``; see
        [`save_pretrained`][tokenkit.weights.model_files.save_pretrained]."""
        return save_pretrained(self, directory, source=source)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hub; see [`push_to_hub`][tokenkit.weights.model_files.push_to_hub]."""
        return push_to_hub(self, repo_id, **kwargs)
