"""Bidirectional x-transformers ``Encoder`` stack behind the backbone contract.

x-transformers (https://github.com/lucidrains/x-transformers) collects many
transformer variants behind flags of one ``AttentionLayers`` class. This part
exposes the common ones as typed options and forwards any other ``Encoder``
keyword through ``extra``, after checking its name against the installed
library, so an experiment with e.g. RMSNorm, GLU feed-forwards, QK-norm or
rotary positions is a change of composition::
    tk.Part("xtransformers", width=512, depth=8, heads=8, use_rmsnorm=True, ff_glu=True,
            extra=(("ff_swish", True), ("attn_gate_values", True)))

Positions: the encoders and generators that use a backbone add their own
learned *absolute* position embeddings to the tokens before it; ``rotary_pos_emb``
adds rotary (relative) positions inside every attention layer on top of those.

Output: normalised. With ``pre_norm`` (the default) x-transformers ends the
stack with a final norm (LayerNorm, or RMSNorm with ``use_rmsnorm``); post-norm
stacks (``pre_norm=False``) end every block with a norm. Only
``extra=(("pre_norm_has_final_norm", False),)`` and the norm replacements
``use_dynamic_tanh``/``use_derf`` give an unnormalised output
(see [`XTransformersConfig.normalized_output`][tokenkit.backbones.xtransformers.XTransformersConfig.normalized_output]),
so a generator using this backbone does not need its own ``output_norm``.

The module's parameter names and initialisation are those of the installed
x-transformers (default PyTorch init), so weights are tied to its version.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import random
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from tokenkit.kinds import Backbone
from tokenkit.registry import register
from tokenkit.validation import check_positive_ints

_OWN = {"width": "dim", "depth": "depth", "heads": "heads", "dim_head": "attn_dim_head"}
"""Config fields under another name in x-transformers."""

_PASSED = ("rotary_pos_emb", "use_rmsnorm", "ff_glu", "ff_mult", "attn_qk_norm", "attn_flash", "residual_attn",
           "pre_norm", "sandwich_norm", "attn_dropout", "ff_dropout")
"""Config fields passed to ``x_transformers.Encoder`` under their own name."""

_REFUSED = {
    "causal": "this backbone is bidirectional (x_transformers.Encoder)",
    "cross_attend": "the backbone contract has no context input",
    "only_cross": "the backbone contract has no context input",
    "use_adaptive_layernorm": "it needs a condition input the backbone contract does not have",
    "use_adaptive_rmsnorm": "it needs a condition input the backbone contract does not have",
    "use_adaptive_layerscale": "it needs a condition input the backbone contract does not have",
    "attn_dim_out": "the backbone maps (B, L, W) to (B, L, W)",
    "ff_dim_out": "the backbone maps (B, L, W) to (B, L, W)",
    "attn_dim_context": "the backbone contract has no context input",
    "rotary_xpos": "x-transformers supports it for causal attention only",
}
"""Encoder options that cannot work behind tokens ``(B, L, W)`` -> tokens ``(B, L, W)``."""


@functools.cache
def accepted_options() -> frozenset[str]:
    """Keyword names the installed ``x_transformers.Encoder`` accepts (``attn_*``/``ff_*`` included).

    ``AttentionLayers`` asserts on unknown plain names but hands ``attn_*`` and
    ``ff_*`` names to ``Attention``/``FeedForward`` (a ``TypeError`` there, at
    build time) and silently drops ``cross_attn_*`` names without cross
    attention; this set lets the config reject all of them up front.
    """
    xt = _x_transformers()

    def params(fn: Any) -> set[str]:
        return {p.name for p in inspect.signature(fn).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"}

    names = params(xt.AttentionLayers.__init__)
    names |= {f"attn_{n}" for n in params(xt.Attention.__init__)}
    names |= {f"ff_{n}" for n in params(xt.FeedForward.__init__)}
    return frozenset(names)


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_value(v) for v in value)
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def _plain(value: Any) -> Any:
    """Frozen mappings back to dicts (x-transformers merges some with ``{**d}``)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


@dataclasses.dataclass(frozen=True)
class XTransformersConfig:
    """Options of the ``xtransformers`` backbone."""

    width: int = 768
    """Token width ``W`` (x-transformers ``dim``)."""
    depth: int = 12
    """Number of blocks (each one attention and one feed-forward layer)."""
    heads: int = 12
    """Attention heads."""
    dim_head: int | None = None
    """Width per head (``attn_dim_head``); ``None``: ``width // heads``, which must
    then divide evenly (x-transformers' own default is 64 whatever the width)."""
    rotary_pos_emb: bool = False
    """Rotary (relative) positions in every attention layer, in addition to the
    absolute embeddings the surrounding part adds. Rotates ``dim_head // 2``
    features per head (``rotary_emb_dim`` in ``extra`` to change), which must be
    an even number of at least 4."""
    use_rmsnorm: bool = False
    """RMSNorm instead of (bias-free) LayerNorm everywhere, the final norm included."""
    ff_glu: bool = False
    """Gated (GEGLU) feed-forward."""
    ff_mult: float = 4.0
    """Feed-forward hidden width as a multiple of ``width``."""
    attn_qk_norm: bool = False
    """l2-normalised queries and keys with a fixed scale (x-transformers ``qk_norm``)."""
    attn_flash: bool = False
    """Attention through ``F.scaled_dot_product_attention`` (not with ``residual_attn``)."""
    residual_attn: bool = False
    """Add the previous layer's pre-softmax attention scores (RealFormer)."""
    pre_norm: bool = True
    """Pre-norm blocks ending with a final norm; ``False``: post-norm blocks."""
    sandwich_norm: bool = False
    """Also normalise each branch output before the residual add (needs ``pre_norm``)."""
    attn_dropout: float = 0.0
    """Attention-probability dropout (training only)."""
    ff_dropout: float = 0.0
    """Feed-forward dropout (training only)."""
    extra: tuple[tuple[str, Any], ...] = ()
    """Any other ``x_transformers.Encoder`` keyword as ``(name, value)`` pairs (a
    mapping is accepted too), e.g. ``(("ff_swish", True), ("use_layerscale", True))``.
    Names are checked against the installed x-transformers; values must be
    JSON-like (numbers, strings, booleans, lists, mappings)."""

    def __post_init__(self) -> None:
        check_positive_ints(self, "width", "depth", "heads", optional=("dim_head",))
        if self.dim_head is None and self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads} (or set dim_head)")
        if not self.ff_mult > 0:
            raise ValueError(f"ff_mult must be positive, got {self.ff_mult}")
        for name in ("attn_dropout", "ff_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.attn_flash and self.residual_attn:
            raise ValueError("attn_flash cannot be combined with residual_attn (x-transformers needs the scores)")
        if self.sandwich_norm and not self.pre_norm:
            raise ValueError("sandwich_norm needs pre_norm=True")
        object.__setattr__(self, "extra", self._check_extra(self.extra))
        if self.rotary_pos_emb:
            rot = dict(self.extra).get("rotary_emb_dim") or self.head_dim // 2
            if not isinstance(rot, int) or rot < 4 or rot % 2 or rot > self.head_dim:
                raise ValueError(f"rotary_pos_emb rotates {rot} features per head; that must be an even int, at "
                                 f"least 4 and at most dim_head {self.head_dim} (raise dim_head or set "
                                 "rotary_emb_dim in extra)")
        if self.extra:  # free-form options: let x-transformers check the combination now, without memory
            try:
                with torch.device("meta"):
                    _encoder(self)
            except Exception as err:  # noqa: BLE001  (x-transformers asserts, TypeErrors, ...)
                raise ValueError(f"x_transformers.Encoder rejects extra={self.extra!r}: "
                                 f"{type(err).__name__}: {err}") from None

    @staticmethod
    def _check_extra(extra: Any) -> tuple[tuple[str, Any], ...]:
        pairs = list(extra.items()) if isinstance(extra, Mapping) else list(extra)
        if not all(isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            raise ValueError(f"extra must be (name, value) pairs or a mapping of names, got {extra!r}")
        accepted = accepted_options()
        own = {**{f: f for f in _PASSED}, **{v: k for k, v in _OWN.items()}}
        seen: set[str] = set()
        for name, value in pairs:
            if name in seen:
                raise ValueError(f"extra option {name!r} is given twice")
            seen.add(name)
            if name in own:
                raise ValueError(f"extra option {name!r} is a field of this backbone; set {own[name]}= instead")
            if name in _REFUSED:
                raise ValueError(f"extra option {name!r} is not allowed: {_REFUSED[name]}")
            if name not in accepted:
                known = sorted((accepted - set(_REFUSED)) | set(own))
                close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ValueError(f"extra option {name!r} is not an x_transformers.Encoder option{hint}")
            if not _json_value(value):
                raise ValueError(f"extra option {name!r} has a value that is not JSON-like: {value!r}")
        return tuple((name, value) for name, value in pairs)

    @property
    def head_dim(self) -> int:
        """Width per attention head (``dim_head`` or ``width // heads``)."""
        return self.dim_head if self.dim_head is not None else self.width // self.heads

    @property
    def normalized_output(self) -> bool:
        """Whether the stack ends with a norm (see the module docstring)."""
        extra = dict(self.extra)
        if extra.get("use_dynamic_tanh") or extra.get("use_derf"):
            return False  # elementwise squashing in place of the norms
        if not self.pre_norm or extra.get("pre_and_post_norm") or extra.get("gated_multi_residual"):
            return True
        return bool(extra.get("pre_norm_has_final_norm", True))

    def encoder_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``x_transformers.Encoder`` for this config."""
        kwargs: dict[str, Any] = {xt: getattr(self, own) for own, xt in _OWN.items()}
        kwargs["attn_dim_head"] = self.head_dim
        kwargs.update({name: getattr(self, name) for name in _PASSED})
        if "verbose" in accepted_options():
            kwargs["verbose"] = False  # no logging about small rotary dims in tests
        extra = {name: _plain(value) for name, value in self.extra}
        value_width = self.heads * (extra.get("attn_value_dim_head") or self.head_dim)
        if self.heads == 1 and value_width != self.width and "attn_project_out" not in extra:
            # x-transformers skips the output projection for one head, breaking the residual when
            # dim_head != width; ask for it explicitly
            kwargs["attn_project_out"] = True
        kwargs.update(extra)
        return kwargs

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> XTransformersConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        heads, per_head = rng.choice([1, 2, 4]), rng.choice([4, 8])
        rotary, flash = rng.random() < 0.5, rng.random() < 0.3
        dim_head = 8 if rotary and per_head < 8 else rng.choice([None, 8])
        return cls(width=heads * per_head, depth=rng.randint(1, 2), heads=heads,
                   dim_head=dim_head, rotary_pos_emb=rotary,
                   use_rmsnorm=rng.random() < 0.5, ff_glu=rng.random() < 0.5, ff_mult=rng.choice([2.0, 4.0]),
                   attn_qk_norm=rng.random() < 0.3, attn_flash=flash,
                   residual_attn=not flash and rng.random() < 0.3, pre_norm=rng.random() < 0.8,
                   extra=rng.choice([(), (("ff_swish", True),), (("attn_gate_values", True),)]))


def _x_transformers() -> Any:
    """The ``x_transformers.x_transformers`` module, imported without the ``torch.jit.script``
    FutureWarning its ``attend`` module raises at import on recent torch (that one warning only)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
        import x_transformers.x_transformers as xt
    return xt


def _encoder(config: XTransformersConfig) -> nn.Module:
    return _x_transformers().Encoder(**config.encoder_kwargs())


@register("backbone", "xtransformers")
class XTransformersBackbone(Backbone):
    """x-transformers ``Encoder``: tokens ``(B, L, W)`` -> normalised tokens ``(B, L, W)``.

    Args:
        config: [`XTransformersConfig`][tokenkit.backbones.xtransformers.XTransformersConfig].

    Examples:
        >>> import torch, tokenkit as tk
        >>> net = tk.build_part("backbone", tk.Part("xtransformers", width=16, depth=1, heads=2,
        ...                                         rotary_pos_emb=True, use_rmsnorm=True))
        >>> net(torch.randn(2, 5, 16)).shape
        torch.Size([2, 5, 16])
    """

    Config = XTransformersConfig

    def __init__(self, config: XTransformersConfig) -> None:
        super().__init__()
        self.config = config
        self.width = config.width
        self.normalized_output = config.normalized_output
        self.encoder = _encoder(config)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Args: tokens: ``(B, L, W)``. Returns: ``(B, L, W)``."""
        return self.encoder(tokens)
