"""A weighted sum of named loss terms (how every training recipe is declared)."""

from __future__ import annotations

import dataclasses
import random

import torch
from torch import nn

from tokenkit.factory import build_part
from tokenkit.kinds import Loss
from tokenkit.losses.base import LossInputs, LossOutput
from tokenkit.registry import register
from tokenkit.specs import Part


@dataclasses.dataclass(frozen=True)
class CompositeConfig:
    """Options of the ``composite`` loss."""

    terms: tuple[tuple[str, float, Part], ...] = ()
    """``(name, weight, loss part)`` triples; the total is ``sum(weight * term)``.
    Names must be unique identifiers (they key the logged terms)."""

    def __post_init__(self) -> None:
        terms = tuple(tuple(t) for t in self.terms)
        if not terms:
            raise ValueError("composite needs at least one term")
        for term in terms:
            if len(term) != 3 or not isinstance(term[0], str) or not term[0].isidentifier() \
                    or isinstance(term[1], bool) or not isinstance(term[1], (int, float)) \
                    or not isinstance(term[2], Part):
                raise ValueError(f"each term must be (name: identifier str, weight: float, loss: Part), got {term!r}")
        names = [t[0] for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"term names must be unique, got {names}")
        object.__setattr__(self, "terms", tuple((n, float(w), p) for n, w, p in terms))

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> CompositeConfig:
        """A small config for tests (randomised weights)."""
        rng = rng or random.Random(0)
        return cls(terms=(("reconstruction", rng.uniform(0.1, 2.0), Part("recon", kind=rng.choice(("l1", "l2")))),
                          ("quantizer", rng.uniform(0.0, 1.0), Part("quantizer"))))


@register("loss", "composite")
class CompositeLoss(Loss):
    """``sum(weight_i * term_i(inputs))`` over named loss parts.

    The term modules live in ``self.terms`` (an ``nn.ModuleDict`` keyed by term name).

    Args:
        config: [`CompositeConfig`][tokenkit.losses.composite.CompositeConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> from tokenkit.losses import LossInputs
        >>> loss = tk.build_part("loss", tk.Part("composite", terms=[
        ...     ("mse", 1.0, tk.Part("recon")), ("vq", 0.5, tk.Part("quantizer"))]))
        >>> x = torch.zeros(1, 3, 2, 2)
        >>> out = loss.terms_of(LossInputs(x, x + 1, torch.tensor(2.0)))
        >>> out.loss.item(), {k: v.item() for k, v in out.terms.items()}
        (2.0, {'mse': 1.0, 'vq': 1.0})
    """

    Config = CompositeConfig

    def __init__(self, config: CompositeConfig) -> None:
        super().__init__()
        self.config = config
        self.weights = {name: weight for name, weight, _ in config.terms}
        self.terms = nn.ModuleDict({name: build_part("loss", part) for name, _, part in config.terms})
        self.needs_targets = any(m.needs_targets for m in self.terms.values())
        self.uses_reconstructions = any(m.uses_reconstructions for m in self.terms.values())

    def terms_of(self, inputs: LossInputs) -> LossOutput:
        """The total and each weighted term (detached), keyed by term name."""
        total, terms = None, {}
        for name, module in self.terms.items():
            value = self.weights[name] * module(inputs)
            terms[name] = value.detach()
            total = value if total is None else total + value
        return LossOutput(total, terms)

    def forward(self, inputs: LossInputs) -> torch.Tensor:
        """The scalar weighted sum."""
        return self.terms_of(inputs).loss
