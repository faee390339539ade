"""`knorm`: keep the context's KV entries whose keys have the smallest L2 norm.

Inspired by Devoto et al. (2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache
Compression"): a low key norm goes with high attention, so per layer and KV head the M entries with the
lowest key norm are kept; the question is not used. As kvpress's KnormPress, every layer is compressed,
once, after reading the context. The norm is that of the cached, rotated keys: a rotary rotation leaves it
unchanged.
"""

from __future__ import annotations

import torch

from compressions.methods.kv_cache import KVCompressor


class KeyNorm(KVCompressor):
    name = "knorm"

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        return -keys.float().norm(dim=-1)
