"""`tova`: keep the context's KV entries its last token attends to most (question-agnostic).

Inspired by TOVA (Oren et al., 2024, "Transformers are Multi-State RNNs"): the attention of the current
query, averaged over the heads of a layer, ranks that layer's entries, and all its heads keep the same
ones. Differences: one-shot, as kvpress's TOVAPress: the context's last token is the query and the M best
entries are kept at once, instead of evicting the worst entry at every step while reading.
"""

from __future__ import annotations

import torch

from compressions.methods.kv_cache import KVCompressor


class TOVA(KVCompressor):
    name = "tova"

    def split(self, ids: list[int], after: list[int]) -> tuple[list[int], list[int]]:
        return ids[:-1], ids[-1:]  # the last token's own entry is part of the context

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        per_layer = attention.mean(dim=(1, 2))  # (L, C): over the heads and the one query
        return per_layer[:, None].expand(*keys.shape[:3])
