"""Weight initialisation used by the TiTok parts (official ``TiTok._init_weights``, ``modeling/titok.py`` L147-160)."""

from __future__ import annotations

from torch import nn


def init_titok_weights(module: nn.Module) -> None:
    """Truncated-normal(0, 0.02) Linear/Conv weights, zero biases, unit LayerNorms.

    Apply with ``model.apply(init_titok_weights)``; embeddings that are raw
    parameters are initialised by their owners.
    """
    if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
        nn.init.trunc_normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.trunc_normal_(module.weight, mean=0.0, std=0.02)
    elif isinstance(module, nn.LayerNorm) and module.elementwise_affine:
        nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
