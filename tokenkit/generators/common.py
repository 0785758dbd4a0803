"""What every class-conditional token generator shares: the class tokens and running a sampler.

Token space (``K`` codebook size, ``C`` classes), the same for MaskGIT and RAR (official
``ImageBert`` / ``RAR``, ``modeling/maskgit.py`` and ``modeling/rar.py``): ids ``0..K-1`` are image
tokens, ``K`` the mask, ``K+1+c`` class ``c`` and ``K+1+C`` the dropped ("unconditional") class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tokenkit.contracts import check_labels
from tokenkit.errors import ContractError


def class_token_ids(labels: torch.Tensor, drop_labels: torch.Tensor | None, *, codebook_size: int, num_classes: int,
                    label_dropout: float = 0.0, training: bool = False,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Token ids of class ``labels`` ``(B,)``: ``K + 1 + label``, or the dropped class ``K + 1 + C`` where
    ``drop_labels`` is True. ``drop_labels=None``: drawn with ``label_dropout`` in training (one uniform per
    label from ``generator``), none dropped otherwise.

    Examples:
        >>> class_token_ids(torch.tensor([0, 3]), torch.tensor([False, True]), codebook_size=16, num_classes=10)
        tensor([17, 27])
    """
    if drop_labels is None:
        drop_labels = torch.zeros_like(labels, dtype=torch.bool)
        if training and label_dropout > 0:
            drop_labels = torch.rand(labels.shape, generator=generator, device=labels.device) < label_dropout
    return torch.where(drop_labels, codebook_size + 1 + num_classes, labels + codebook_size + 1)


def run_sampler(model: nn.Module, sampler: Callable[..., torch.Tensor], labels: Any, overrides: Mapping[str, Any],
                **kwargs: Any) -> torch.Tensor:
    """``sampler(model, labels, settings, **kwargs)`` in eval mode (the mode is restored after), with ``labels``
    checked (class ids in ``[0, C)``) and ``settings`` the model's ``config.sampling`` with ``overrides``.

    Raises:
        ContractError: Bad labels, or an override the generator's sampling settings do not have (the message
            lists those it has).

    Examples:
        >>> import tokenkit as tk
        >>> gen = tk.build("maskgit-tiny")
        >>> run_sampler(gen, lambda model, labels, settings: labels * settings.steps, [1, 2], {"steps": 3})
        tensor([3, 6])
    """
    labels = check_labels(labels, next(model.parameters()).device)
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= model.num_classes):
        raise ContractError(f"labels must lie in [0, {model.num_classes}), got {labels.tolist()}")
    defaults = model.config.sampling
    try:
        settings = dataclasses.replace(defaults, **overrides)
    except TypeError as err:
        fields = ", ".join(f.name for f in dataclasses.fields(defaults))
        raise ContractError(f"{err}; sampling options of {type(model).__name__} are {fields}") from None
    was_training = model.training
    model.eval()
    try:
        return sampler(model, labels, settings, **kwargs)
    finally:
        model.train(was_training)
