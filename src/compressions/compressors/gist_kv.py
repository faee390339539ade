"""`gist_kv`: M gist tokens read after the context; their per-layer keys and values are the compressed
context (inspired by Gisting, Mu et al. 2023, and 500xCompressor, Li et al. 2025).

The encoder (the LLM with its encoder adapter) reads `prompt prefix + context + M gists`; the decoder
(the frozen LLM) then holds its own cache of the prompt prefix followed by the gists' K/V entries and reads
the question and answer after them. That is the gist mask of the Gist paper (what follows the gists sees
only the prompt prefix and the gists, never the context) computed as a cache, so the compressed form is
the cache itself: M entries per layer and KV head, the memory of M tokens. Every entry keeps the rotary
position it was computed at; the question continues at the position after the gists, as in a full
forward. Without the encoder adapter the decoder reads exactly what the masked full forward gives.

Gist inputs: the embeddings of the first M context tokens (what `prefix` keeps) plus a learned,
zero-initialised vector per gist, so that at step 0 the gists re-read the prefix's tokens with the
whole context visible, and the adapter learns what to put in their K/V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn
from transformers import DynamicCache

from compressions.compressors.base import CompressorConfig
from compressions.compressors.encoder import EncoderCompressor, after_context, check_context_batch, prefix_positions
from compressions.models.generation import position_ids


class CacheReader(Protocol):
    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def prefix_ids(self) -> list[int]: ...

    def encode_cache(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[DynamicCache, torch.Tensor]: ...


@dataclass
class GistEntries:
    keys: list[torch.Tensor]  # per layer (B, n_kv, M, head_dim)
    values: list[torch.Tensor]
    positions: torch.Tensor  # (B, M): the position each gist was read at
    hidden: torch.Tensor  # (B, M, d): the gists' last hidden states (for the collapse diagnostics)

    @property
    def next_positions(self) -> torch.Tensor:
        """(B,) where the text after the gists continues."""
        return self.positions[:, -1] + 1


class GistKVCompressor(EncoderCompressor):
    makes_cache = True
    config_class = CompressorConfig

    def __init__(self, config: CompressorConfig):
        super().__init__(config)
        self.offset = nn.Parameter(torch.zeros(config.num_tokens, config.input_size))  # (M, d)

    def forward(self, reader: CacheReader, ids: torch.Tensor, mask: torch.Tensor) -> GistEntries:
        check_context_batch(ids, mask)
        mask = mask.bool()
        m = self.config.num_tokens
        embeds = reader.embed(ids)  # (B, N, d)
        picked = prefix_positions(mask.sum(dim=1), m)  # (B, M)
        gists = embeds.gather(1, picked[..., None].expand(-1, -1, embeds.shape[-1])) + self.offset
        head = torch.tensor(reader.prefix_ids(), device=ids.device)
        b, p = len(ids), len(head)
        # the prompt prefix, then the context: the gists are read where the context's next token would be
        text = torch.cat([reader.embed(head)[None].expand(b, -1, -1), embeds], dim=1)
        text_mask = torch.cat([mask.new_ones(b, p), mask], dim=1)
        inputs, full_mask = after_context(text, text_mask, gists)
        cache, hidden = reader.encode_cache(inputs, full_mask)
        return GistEntries(
            keys=[layer.keys[:, :, -m:] for layer in cache.layers],
            values=[layer.values[:, :, -m:] for layer in cache.layers],
            positions=position_ids(full_mask)[:, -m:],
            hidden=hidden[:, -m:],
        )
