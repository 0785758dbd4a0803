"""Declarative state-dict key maps between a foreign layout and tokenkit's.

A [`KeyMap`][tokenkit.weights.keymap.KeyMap] is an ordered list of
[`Rule`][tokenkit.weights.keymap.Rule]s, each a pair of key templates with
placeholders (``{i}`` digits, ``{p}`` ``weight``/``bias``, ``{part}``
``encoder``/``decoder``, ``{rest}`` anything). The first rule whose template
matches a key renames it; the same table converts in both directions, so a
round trip is exact by construction.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

import torch

PLACEHOLDERS = {"i": r"\d+", "p": r"weight|bias", "part": r"encoder|decoder", "rest": r".+"}


def _compile(template: str) -> re.Pattern:
    pattern = ""
    for literal, name in re.findall(r"([^{]*)(?:\{(\w+)\})?", template):
        pattern += re.escape(literal)
        if name:
            pattern += f"(?P<{name}>{PLACEHOLDERS[name]})"
    return re.compile(pattern + r"\Z")


@dataclasses.dataclass(frozen=True)
class Rule:
    """``foreign`` key template <-> ``tokenkit`` key template.

    Attributes:
        foreign: Template of the key in the foreign (official) layout.
        tokenkit: Template of the key in tokenkit's layout.
        conv1x1: The foreign tensor is a 1x1 conv weight ``(O, I, 1, 1)`` stored
            by tokenkit as a linear weight ``(O, I)`` (biases are unchanged).
    """

    foreign: str
    tokenkit: str
    conv1x1: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", {"foreign": _compile(self.foreign), "tokenkit": _compile(self.tokenkit)})

    def apply(self, key: str, source: str) -> str | None:
        """The converted key if this rule matches ``key`` (in layout ``source``), else ``None``."""
        target = "tokenkit" if source == "foreign" else "foreign"
        match = self._patterns[source].match(key)
        return None if match is None else getattr(self, target).format(**match.groupdict())

    def convert_tensor(self, tensor: torch.Tensor, source: str) -> torch.Tensor:
        """Reshape 1x1 conv weights between the layouts."""
        if not self.conv1x1:
            return tensor
        if source == "foreign" and tensor.ndim == 4:
            return tensor.reshape(tensor.shape[0], tensor.shape[1])
        if source == "tokenkit" and tensor.ndim == 2:
            return tensor.reshape(*tensor.shape, 1, 1)
        return tensor


@dataclasses.dataclass(frozen=True)
class KeyMap:
    """Ordered rules; keys matching no rule are an error (nothing passes silently)."""

    rules: tuple[Rule, ...]

    def _convert(self, state_dict: Mapping[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        unmatched = []
        for key, tensor in state_dict.items():
            for rule in self.rules:
                new_key = rule.apply(key, source)
                if new_key is not None:
                    out[new_key] = rule.convert_tensor(tensor, source)
                    break
            else:
                unmatched.append(key)
        if unmatched:
            raise KeyError(f"no conversion rule for key(s): {', '.join(unmatched[:10])}"
                           + (f" ... and {len(unmatched) - 10} more" if len(unmatched) > 10 else ""))
        return out

    def to_tokenkit(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Foreign layout -> tokenkit layout."""
        return self._convert(state_dict, "foreign")

    def to_foreign(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """tokenkit layout -> foreign layout."""
        return self._convert(state_dict, "tokenkit")
