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

PLACEHOLDERS = {"i": r"\d+", "p": r"weight|bias", "part": r"encoder|decoder", "rest": r".+", "_name": r"\w+"}


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
        reshape: ``"conv1x1"``: the foreign tensor is a 1x1 conv weight ``(O, I, 1, 1)``
            stored by tokenkit as a linear weight ``(O, I)`` (biases are unchanged);
            ``"leading_one"``: the foreign tensor has an extra leading axis of size 1.

    Examples:
        >>> import torch
        >>> rule = Rule("{part}.transformer.{i}.ln_1.{p}", "{part}.backbone.blocks.{i}.norm1.{p}")
        >>> rule.apply("encoder.transformer.3.ln_1.weight", "foreign")
        'encoder.backbone.blocks.3.norm1.weight'
        >>> rule.apply("decoder.backbone.blocks.0.norm1.bias", "tokenkit")
        'decoder.transformer.0.ln_1.bias'
        >>> rule.apply("encoder.proj.weight", "foreign") is None  # not this rule's key
        True
        >>> conv = Rule("encoder.conv_out.{p}", "encoder.proj.{p}", reshape="conv1x1")
        >>> tuple(conv.convert_tensor(torch.zeros(8, 64, 1, 1), "foreign").shape)
        (8, 64)
    """

    foreign: str
    tokenkit: str
    reshape: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patterns", {"foreign": _compile(self.foreign), "tokenkit": _compile(self.tokenkit)})

    def apply(self, key: str, source: str) -> str | None:
        """The converted key if this rule matches ``key`` (in layout ``source``), else ``None``."""
        target = "tokenkit" if source == "foreign" else "foreign"
        match = self._patterns[source].match(key)
        return None if match is None else getattr(self, target).format(**match.groupdict())

    def convert_tensor(self, tensor: torch.Tensor, source: str) -> torch.Tensor:
        """Apply ``reshape`` in the direction away from ``source``."""
        if self.reshape == "conv1x1":
            if source == "foreign" and tensor.ndim == 4:
                return tensor.reshape(tensor.shape[0], tensor.shape[1])
            if source == "tokenkit" and tensor.ndim == 2:
                return tensor.reshape(*tensor.shape, 1, 1)
        elif self.reshape == "leading_one":
            if source == "foreign" and tensor.ndim >= 1 and tensor.shape[0] == 1:
                return tensor.reshape(tensor.shape[1:])
            if source == "tokenkit":
                return tensor.reshape(1, *tensor.shape)
        return tensor


@dataclasses.dataclass(frozen=True)
class Fusion:
    """Foreign tensors concatenated (dim 0) into one tokenkit tensor, e.g. separate
    ``query``/``key``/``value`` into a packed ``qkv``.

    Attributes:
        template: Foreign key template with a ``{name}`` slot (and other placeholders).
        names: The foreign names, in concatenation order.
        fused: The name put in the ``{name}`` slot for the fused tensor (before the rules apply).

    Examples:
        >>> import torch
        >>> fusion = Fusion("layer.{i}.{name}.{p}", ("query", "key", "value"), "qkv")
        >>> separate = {f"layer.0.{n}.weight": torch.zeros(4, 4) for n in ("query", "key", "value")}
        >>> fused = fusion.fuse(separate)
        >>> {name: tuple(tensor.shape) for name, tensor in fused.items()}
        {'layer.0.qkv.weight': (12, 4)}
        >>> sorted(fusion.split(fused))
        ['layer.0.key.weight', 'layer.0.query.weight', 'layer.0.value.weight']
    """

    template: str
    names: tuple[str, ...]
    fused: str

    def fuse(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Concatenate complete groups; other keys pass through."""
        pattern = _compile(self.template.replace("{name}", "{_name}"))
        groups: dict[tuple, dict[str, str]] = {}
        for key in state_dict:
            match = pattern.match(key)
            if match and match["_name"] in self.names:
                slots = tuple(sorted((k, v) for k, v in match.groupdict().items() if k != "_name"))
                groups.setdefault(slots, {})[match["_name"]] = key
        out = dict(state_dict)
        for slots, members in groups.items():
            if set(members) != set(self.names):
                continue  # incomplete group: left for strict loading to report
            out[self.template.format(name=self.fused, **dict(slots))] = torch.cat(
                [out.pop(members[n]) for n in self.names], dim=0)
        return out

    def split(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Inverse of [`fuse`][tokenkit.weights.keymap.Fusion.fuse]."""
        pattern = _compile(self.template.replace("{name}", "{_name}"))
        out: dict[str, torch.Tensor] = {}
        for key, tensor in state_dict.items():
            match = pattern.match(key)
            if match and match["_name"] == self.fused:
                slots = {k: v for k, v in match.groupdict().items() if k != "_name"}
                for name, chunk in zip(self.names, tensor.chunk(len(self.names), dim=0)):
                    out[self.template.format(name=name, **slots)] = chunk.clone()
            else:
                out[key] = tensor
        return out


@dataclasses.dataclass(frozen=True)
class KeyMap:
    """Ordered rules; keys matching no rule are an error (nothing passes silently).

    Attributes:
        rules: The [`Rule`][tokenkit.weights.keymap.Rule]s; the first that matches a key renames it.
        fusions: [`Fusion`][tokenkit.weights.keymap.Fusion]s applied to the foreign keys before the rules
            (and undone after them on the way back).

    Examples:
        >>> import torch
        >>> keymap = KeyMap((Rule("model.fc{i}.{p}", "mlp.fc{i}.{p}"), Rule("head.{p}", "head.{p}")))
        >>> foreign = {"model.fc1.weight": torch.zeros(4, 2), "model.fc1.bias": torch.zeros(4),
        ...            "head.weight": torch.zeros(1, 4)}
        >>> ours = keymap.to_tokenkit(foreign)
        >>> sorted(ours)
        ['head.weight', 'mlp.fc1.bias', 'mlp.fc1.weight']
        >>> keymap.to_foreign(ours).keys() == foreign.keys()  # the same table converts back
        True
        >>> keymap.to_tokenkit({"model.norm.weight": torch.zeros(4)})
        Traceback (most recent call last):
        ...
        KeyError: 'no conversion rule for key(s): model.norm.weight'
    """

    rules: tuple[Rule, ...]
    fusions: tuple[Fusion, ...] = ()

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
        state_dict = dict(state_dict)
        for fusion in self.fusions:
            state_dict = fusion.fuse(state_dict)
        return self._convert(state_dict, "foreign")

    def to_foreign(self, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """tokenkit layout -> foreign layout."""
        out = self._convert(state_dict, "tokenkit")
        for fusion in self.fusions:
            out = fusion.split(out)
        return out
