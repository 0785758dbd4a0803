"""Methods shared by tokenkit's model classes (imports are lazy to keep module loading acyclic)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


class PretrainedMixin:
    """``from_pretrained`` / ``save_pretrained`` / ``push_to_hub`` as methods of a model class."""

    @classmethod
    def from_pretrained(cls, source: str | os.PathLike, *, device: torch.device | str | None = None,
                        revision: str | None = None, torch_dtype: torch.dtype | str | None = torch.float32) -> Any:
        """Load composition and weights; see [`from_pretrained`][tokenkit.weights.pretrained.from_pretrained].

        Raises:
            WeightsError: Also when ``source`` holds another kind of model than ``cls``.
        """
        from tokenkit.errors import WeightsError
        from tokenkit.weights.pretrained import from_pretrained

        model = from_pretrained(source, device=device, revision=revision, torch_dtype=torch_dtype)
        if not isinstance(model, cls):
            raise WeightsError(f"{source} holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` + ``config.json``; see [`save_pretrained`][tokenkit.weights.pretrained.save_pretrained]."""
        from tokenkit.weights.pretrained import save_pretrained

        return save_pretrained(self, directory)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Upload to the Hub; see [`push_to_hub`][tokenkit.weights.pretrained.push_to_hub]."""
        from tokenkit.weights.pretrained import push_to_hub

        return push_to_hub(self, repo_id, **kwargs)
