"""Nested ("tail-drop") tokens around any quantizer.

As in FlexTok (https://arxiv.org/abs/2502.13967) and One-D-Piece
(https://arxiv.org/abs/2501.10064): in training, a random number of trailing
codes is replaced by a learned mask code, so the decoder learns to
reconstruct from any prefix and the first tokens carry the coarse content. At
inference ``tok.detokenize(ids[:, :k])`` decodes any ``k <= N`` tokens: the
missing tail is filled with the mask code. With ``fill="truncate"`` (One-D-Piece's
"Tail Token Drop", ``modeling/one_d_piece.py``) there is no mask code: the
decoder reads the shorter sequence, in training and at inference.

It wraps another quantizer (a sub-part), so it composes with every bottleneck
and every 1D encoder/decoder pair::
    spec = tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop", quantizer=tk.Part("fsq")))
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any, Literal

import torch
from torch import nn

from tokenkit.contracts import QuantizerOutput
from tokenkit.kinds import Quantizer
from tokenkit.registry import register
from tokenkit.specs import Part, resolve_part


@dataclasses.dataclass(frozen=True)
class TailDropConfig:
    """Options of the ``tail-drop`` wrapper."""

    quantizer: Part = Part("vq")
    """The wrapped quantizer (kind ``quantizer``); widths and codebook come from it."""
    min_tokens: int = 1
    """Fewest tokens kept in training."""
    drop_prob: float = 1.0
    """Fraction of training samples (``fill="truncate"``: of batches) whose tail is dropped; the others keep all
    tokens."""
    fill: Literal["mask", "truncate"] = "mask"
    """What stands for the dropped tail. ``"mask"``: a learned ``mask_code`` (the decoder always reads ``N``
    tokens; each sample draws its own kept count). ``"truncate"``: nothing, as One-D-Piece
    (https://arxiv.org/abs/2501.10064, ``OneDPiece.apply_tail_token_drop``): the decoder reads the first ``k``
    tokens only, so it must accept ``k < N`` tokens (``vit1d`` does); in training one ``k`` is drawn per batch
    and the codes are ``(B, k, D')``. The wrapper then has no parameter of its own and its state dict is the
    wrapped quantizer's, key for key (a checkpoint of the plain quantizer's layout loads into it)."""

    def __post_init__(self) -> None:
        if not isinstance(self.min_tokens, int) or self.min_tokens < 1:
            raise ValueError(f"min_tokens must be a positive int, got {self.min_tokens!r}")
        if not 0.0 <= self.drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {self.drop_prob}")
        if self.fill not in ("mask", "truncate"):
            raise ValueError(f"fill must be 'mask' or 'truncate', got {self.fill!r}")
        if isinstance(self.quantizer, Part) and self.quantizer.name == "tail-drop":
            raise ValueError("tail-drop cannot wrap another tail-drop")

    @property
    def inner(self) -> Any:
        """The wrapped quantizer's resolved config."""
        return resolve_part("quantizer", self.quantizer)

    @property
    def in_dim(self) -> int | None:
        """Latent width read (the wrapped quantizer's)."""
        return getattr(self.inner, "in_dim", None)

    @property
    def out_dim(self) -> int | None:
        """Code width written (the wrapped quantizer's)."""
        return getattr(self.inner, "out_dim", None)

    @classmethod
    def tiny(cls, rng: random.Random | None = None) -> TailDropConfig:
        """A small valid config for tests (randomised by ``rng``)."""
        rng = rng or random.Random(0)
        inner = rng.choice([Part("vq", codebook_size=rng.randint(2, 16), dim=rng.randint(2, 6)),
                            Part("gaussian", channels=rng.randint(1, 4))])
        return cls(quantizer=inner, min_tokens=rng.randint(1, 2), drop_prob=rng.choice([0.5, 1.0]))


@register("quantizer", "tail-drop")
class TailDrop(Quantizer):
    """Tail drop around a quantizer: latents ``(B, N, D)`` -> codes ``(B, N, D')`` whose tail
    (training only) is the learned mask code, or (``fill="truncate"``, training only) codes
    ``(B, k, D')`` of the first ``k`` tokens.

    Args:
        config: [`TailDropConfig`][tokenkit.quantizers.tail_drop.TailDropConfig].
        quantizer: The built wrapped quantizer.

    Examples:
        >>> import torch, tokenkit as tk
        >>> tok = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop")))
        >>> ids = tok.tokenize(torch.rand(2, 3, 32, 32))
        >>> tok.detokenize(ids[:, :3]).shape  # the first 3 of 8 tokens
        torch.Size([2, 3, 32, 32])
        >>> cut = tk.build(tk.spec("titok-tiny").replace(quantizer=tk.Part("tail-drop", fill="truncate")))
        >>> sorted(k for k in cut.state_dict() if k.startswith("quantizer."))  # the plain vq's keys
        ['quantizer.embedding.weight']
    """

    Config = TailDropConfig
    supports_prefix = True
    """Decoding a prefix of the tokens is meaningful (the tail is filled with ``mask_code``, or left out)."""

    def __init__(self, config: TailDropConfig, quantizer: nn.Module) -> None:
        super().__init__()
        self.config = config
        self.quantizer = quantizer
        out_dim = config.out_dim
        if out_dim is None:
            raise ValueError(f"tail-drop needs a quantizer with an out_dim; {config.quantizer.name!r} has none")
        if config.fill == "mask":
            self.mask_code = nn.Parameter(torch.randn(out_dim) * 0.02)
        else:
            self.mask_code = None
            register = getattr(self, "register_state_dict_post_hook", None) or self._register_state_dict_hook
            register(_unwrap_keys)  # torch < 2.5 has only the private name

    @property
    def codebook_size(self) -> int | None:
        """The wrapped quantizer's codebook size."""
        return self.quantizer.codebook_size

    @property
    def num_codebooks(self) -> int:
        """The wrapped quantizer's codebooks per token."""
        return self.quantizer.num_codebooks

    def keep_counts(self, batch: int, num_tokens: int, device: torch.device) -> torch.Tensor:
        """Tokens kept per sample in training: uniform in ``[min_tokens, N]`` for a ``drop_prob`` fraction, else N."""
        low = min(self.config.min_tokens, num_tokens)
        keep = torch.randint(low, num_tokens + 1, (batch,), device=device)
        full = torch.rand(batch, device=device) >= self.config.drop_prob
        return torch.where(full, num_tokens, keep)

    def forward(self, latents: torch.Tensor) -> QuantizerOutput:
        """Quantize with the wrapped quantizer; in training replace each sample's tail by ``mask_code``."""
        out = self.quantizer(latents)
        if not self.training:
            return out
        batch, num_tokens = out.codes.shape[:2]
        if self.mask_code is None:  # truncate: one kept count for the batch, the decoder reads k tokens
            keep = int(self.keep_counts(1, num_tokens, out.codes.device)[0])
            stats = {**out.stats, "kept_tokens": out.codes.new_tensor(float(keep))}
            return QuantizerOutput(out.codes[:, :keep], out.indices, out.loss, stats)
        keep = self.keep_counts(batch, num_tokens, out.codes.device)
        kept = torch.arange(num_tokens, device=out.codes.device)[None, :] < keep[:, None]
        codes = torch.where(kept[..., None], out.codes, self.mask_code.to(out.codes.dtype))
        stats = {**out.stats, "kept_tokens": keep.float().mean()}
        return QuantizerOutput(codes, out.indices, out.loss, stats)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """The wrapped quantizer's ``lookup``."""
        return self.quantizer.lookup(indices)

    def pad_codes(self, codes: torch.Tensor, num_tokens: int) -> torch.Tensor:
        """Complete a prefix ``(B, k, D')`` to ``(B, num_tokens, D')`` with the mask code
        (``fill="truncate"``: the prefix unchanged)."""
        missing = num_tokens - codes.shape[1]
        if missing <= 0 or self.mask_code is None:
            return codes
        tail = self.mask_code.to(codes.dtype).expand(codes.shape[0], missing, -1)
        return torch.cat([codes, tail], dim=1)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: Any) -> None:
        # fill="truncate": the state dict holds the wrapped quantizer's keys without its "quantizer." level
        if self.mask_code is None:  # every key under the prefix is the wrapped quantizer's
            for key in [k for k in state_dict if k.startswith(prefix)]:
                state_dict[prefix + "quantizer." + key[len(prefix):]] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args)


def _unwrap_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    """State-dict hook of a parameter-free (``fill="truncate"``) tail drop: ``PREFIX.quantizer.KEY`` -> ``PREFIX.KEY``."""
    inner = prefix + "quantizer."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)
