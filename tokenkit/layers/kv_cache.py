"""Keys and values of past positions for incremental (autoregressive) decoding."""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys and values of the positions decoded so far, in preallocated buffers.

    The cache belongs to the caller (a sampler), not to the modules: a backbone reads and writes
    it when given one (``backbone(x, cache=cache)``) and otherwise runs without. Each layer writes
    the keys and values of the new positions after the ``length`` already cached
    ([`update`][tokenkit.layers.kv_cache.KVCache.update]); after the whole stack ran,
    [`advance`][tokenkit.layers.kv_cache.KVCache.advance] moves ``length`` on.

    Args:
        layers: Number of attention layers.
        batch: Batch size ``B``.
        heads: Attention heads ``H``.
        head_dim: Width per head ``D``.
        max_length: Most positions it holds.
        dtype: Dtype of the keys and values.
        device: Their device.

    Examples:
        >>> import torch
        >>> cache = KVCache(layers=1, batch=2, heads=4, head_dim=8, max_length=10)
        >>> k, v = cache.update(0, torch.randn(2, 4, 3, 8), torch.randn(2, 4, 3, 8))  # a prefill of 3 positions
        >>> cache.advance(3)
        >>> k, v = cache.update(0, torch.randn(2, 4, 1, 8), torch.randn(2, 4, 1, 8))  # one more
        >>> tuple(k.shape), cache.length
        ((2, 4, 4, 8), 3)
    """

    def __init__(self, *, layers: int, batch: int, heads: int, head_dim: int, max_length: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> None:
        shape = (layers, batch, heads, max_length, head_dim)
        self.keys = torch.empty(shape, dtype=dtype, device=device)
        self.values = torch.empty(shape, dtype=dtype, device=device)
        self.length = 0
        """Positions cached (and complete in every layer)."""
        self.memo: dict[str, object] = {}
        """What a sampler computes once per sequence and reads at every step (e.g. the adaLN modulations of
        every position, which do not depend on the tokens)."""

    @property
    def max_length(self) -> int:
        """Most positions the cache holds."""
        return self.keys.shape[3]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k``, ``v`` ``(B, H, n, D)`` of ``n`` new positions of ``layer``.

        Returns:
            Keys and values of every position so far, ``(B, H, length + n, D)`` each (views of the cache).

        Raises:
            ValueError: The new positions do not fit in ``max_length``.
        """
        end = self.length + k.shape[2]
        if end > self.max_length:
            raise ValueError(f"KV cache holds {self.max_length} positions; {self.length} cached + {k.shape[2]} new")
        self.keys[layer, :, :, self.length : end] = k
        self.values[layer, :, :, self.length : end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]

    def advance(self, n: int) -> None:
        """Count ``n`` more positions as cached (after every layer stored them)."""
        self.length += n
