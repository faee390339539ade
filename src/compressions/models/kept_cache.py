"""The KV entries a reader holds for a prompt's first tokens after a KV-cache method (methods/kv_cache.py)
kept some of them: the prompt prefix's entries, shared by every prompt and never copied, then the context
entries kept, which may differ per layer and KV head but number the same in each.

Every entry keeps the rotary position it was computed at; the text after the context continues at
`next_position`, the position it has after the whole context, so generation passes explicit
`position_ids` (the cache is shorter than the positions it covers).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel


@dataclass(frozen=True)
class KeptCache:
    prefix: list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), each [1, n_kv, P, head_dim]
    keys: torch.Tensor  # (L, n_kv, k, head_dim): each layer and KV head holds its own k context entries
    values: torch.Tensor  # (L, n_kv, k, head_dim)
    positions: torch.Tensor  # (L, n_kv, k): the prompt position each kept entry was computed at
    next_position: int  # position of the first token after the context

    @property
    def length(self) -> int:
        """Entries per layer and KV head: the prefix's, then the kept ones."""
        return self.prefix[0][0].shape[2] + self.keys.shape[2]

    @property
    def kept(self) -> int:
        return self.keys.shape[2]


def batch_cache(model: PreTrainedModel, caches: list[KeptCache]) -> tuple[DynamicCache, torch.Tensor]:
    """A fresh cache (a forward appends to the one it is given) holding each row's entries, padded at their
    end to the longest row, and its attention mask (B, width): 0 on the padding."""
    width = max(c.length for c in caches)
    cache = DynamicCache(config=model.config)
    for layer in range(len(caches[0].prefix)):
        keys = [torch.cat([c.prefix[layer][0][0], c.keys[layer]], dim=1) for c in caches]  # each (n_kv, length, hd)
        values = [torch.cat([c.prefix[layer][1][0], c.values[layer]], dim=1) for c in caches]
        cache.update(_pad_stack(keys, width).to(model.device), _pad_stack(values, width).to(model.device), layer)
    mask = torch.tensor([[1] * c.length + [0] * (width - c.length) for c in caches])
    return cache, mask


def _pad_stack(rows: list[torch.Tensor], width: int) -> torch.Tensor:
    """(B, n_kv, width, hd) from rows of (n_kv, length, hd), zeros after each row's entries."""
    return torch.stack([F.pad(row, (0, 0, 0, width - row.shape[1])) for row in rows])
