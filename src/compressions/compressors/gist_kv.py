"""`gist_kv`: M gist tokens read after the context; their per-layer keys and values are the compressed
context (inspired by Gisting, Mu et al. 2023, and 500xCompressor, Li et al. 2025).

The encoder (the LLM with its encoder adapter) reads `prompt prefix + context + M gists`; the decoder
(the frozen LLM) then holds its own cache of the prompt prefix followed by the gists' K/V entries and reads
the question and answer after them. That is the gist mask of the Gist paper (what follows the gists sees
only the prompt prefix and the gists, never the context) computed as a cache, so the compressed form is
the cache itself: M entries per layer and KV head, the memory of M tokens. Every entry keeps the rotary
position it was computed at; the question continues at the position after the gists, as in a full
forward. Without the encoder adapter the decoder reads exactly what the masked full forward gives; with
`pipeline.use_lora` too, the decoder reads with the encoder's adapter, and the whole is the adapted LLM's masked
full forward (the Gist paper trains one model for both).

Two layouts (`compressor.layout`):
- `after`: all M gists after the context. Their inputs are the embeddings of the first M context tokens
  (what `prefix` keeps) plus a learned, zero-initialised vector per gist, so that at step 0 the gists
  re-read the prefix's tokens with the whole context visible, and the adapter learns what to put in their K/V.
- `spread` (inspired by GistPool, Petrov et al. 2025, and Activation Beacon): the context cut into M windows
  of near-equal length, gist i read right after window i (so it sees windows 1..i, its own nearest). Its
  input is a copy of its window's last token plus the learned vector: at step 0 the gists re-read M evenly
  spaced tokens. The question still continues after the whole context and all gists.

`compressor.shift` (inspired by GistPool's fix of the information-flow delay): a gist's K/V at layer l are
made from its hidden state before layer l, so what it gathers from the context at layer l reaches the
answer only through layer l+1's entries, a layer later than a token of the full context would. With the
shift, decoder layer l reads the entries layer l makes of the gist's hidden state after layer l (the input
of layer l+1); the top layer keeps its own. GistPool shifts the gists' activations inside one forward; here
the shifted entries are computed from the encoder's hidden states, so the decoder stays an unchanged LLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from transformers import DynamicCache

from compressions.compressors.base import CompressorConfig
from compressions.compressors.encoder import EncoderCompressor, after_context, check_context_batch, prefix_positions
from compressions.errors import ConfigError
from compressions.models.generation import position_ids

LAYOUTS = ("after", "spread")


@dataclass
class GistKVConfig(CompressorConfig):
    layout: str = field(default="after", metadata={"help": "after: gists after the context | spread: gist i after window i"})
    shift: bool = field(default=False, metadata={"help": "decoder layer l reads the gists' entries made of their hidden states after layer l"})

    def validate(self) -> None:
        super().validate()
        if self.layout not in LAYOUTS:
            raise ConfigError(f"compressor.layout must be one of {LAYOUTS}, got {self.layout!r}")


class CacheReader(Protocol):
    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def prefix_ids(self) -> list[int]: ...

    def encode_cache(self, embeds: torch.Tensor, mask: torch.Tensor, all_layers: bool = False) -> tuple[DynamicCache, torch.Tensor]: ...

    def layer_entries(self, layer: int, hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class GistEntries:
    keys: list[torch.Tensor]  # per layer (B, n_kv, M, head_dim)
    values: list[torch.Tensor]
    positions: torch.Tensor  # (B, M): the position each gist was read at
    hidden: torch.Tensor | None  # (B, M, d): the gists' last hidden states (for the collapse diagnostics)
    mask: torch.Tensor | None = None  # (B, M) False on an entry the decoder must not read (a short context's padding)
    after: torch.Tensor | None = None  # (B,) where the text after them continues; by default after the last entry

    @property
    def next_positions(self) -> torch.Tensor:
        """(B,) where the text after the gists continues."""
        return self.positions[:, -1] + 1 if self.after is None else self.after

    def rows(self, index: torch.Tensor) -> GistEntries:
        """The entries of rows `index` (B',), e.g. one context's entries for each of its questions."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, index.to(t.device))

        return GistEntries(
            [pick(k) for k in self.keys], [pick(v) for v in self.values], pick(self.positions), pick(self.hidden), pick(self.mask), pick(self.after)
        )


class GistKVCompressor(EncoderCompressor):
    makes_cache = True
    config_class = GistKVConfig

    def __init__(self, config: GistKVConfig):
        super().__init__(config)
        self.offset = nn.Parameter(torch.zeros(config.num_tokens, config.input_size))  # (M, d)

    def forward(self, reader: CacheReader, ids: torch.Tensor, mask: torch.Tensor) -> GistEntries:
        check_context_batch(ids, mask)
        mask = mask.bool()
        m = self.config.num_tokens
        embeds = reader.embed(ids)  # (B, N, d)
        lengths = mask.sum(dim=1)
        if self.config.layout == "after":  # the gists are read where the context's next token would be
            picked = prefix_positions(lengths, m)  # (B, M)
            gists = embeds.gather(1, picked[..., None].expand(-1, -1, embeds.shape[-1])) + self.offset
            body, body_mask = after_context(embeds, mask, gists)
            columns = torch.arange(ids.shape[1], body.shape[1], device=ids.device).expand(len(ids), -1)
        else:
            body, body_mask, columns = spread(embeds, lengths, self.offset)
        head = torch.tensor(reader.prefix_ids(), device=ids.device)
        b, p = len(ids), len(head)
        inputs = torch.cat([reader.embed(head)[None].expand(b, -1, -1), body], dim=1)  # the prompt prefix first
        full_mask = torch.cat([mask.new_ones(b, p), body_mask], dim=1)
        columns = columns + p  # (B, M) where each gist sits in `inputs`
        cache, states = reader.encode_cache(inputs, full_mask, all_layers=self.config.shift)
        keys = [entries_at(layer.keys, columns) for layer in cache.layers]
        values = [entries_at(layer.values, columns) for layer in cache.layers]
        positions = position_ids(full_mask).gather(1, columns)
        at = columns[..., None].expand(-1, -1, embeds.shape[-1])
        if self.config.shift:  # states[l + 1]: the input of layer l + 1, i.e. what layer l wrote
            for layer in range(len(keys) - 1):
                keys[layer], values[layer] = reader.layer_entries(layer, states[layer + 1].gather(1, at), positions)
        hidden = states[-1] if self.config.shift else states
        return GistEntries(keys, values, positions, hidden.gather(1, at))


def entries_at(entries: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """(B, n_kv, T, head_dim) cache entries -> (B, n_kv, M, head_dim): each row's entries at its columns (B, M)."""
    return entries.gather(2, columns[:, None, :, None].expand(-1, entries.shape[1], -1, entries.shape[3]))


def window_ends(lengths: torch.Tensor, m: int) -> torch.Tensor:
    """(B, M): window i of a row of `lengths` tokens ends before token ends[i] (M near-equal windows)."""
    i = torch.arange(m, device=lengths.device)
    return ((i[None, :] + 1) * lengths[:, None]) // m


def spread(embeds: torch.Tensor, lengths: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded context embeddings (B, N, d) -> (B, N + M, d) with gist i right after the i-th of M
    near-equal windows of each row's tokens (its input: the window's last token + offset[i]), the mask,
    and the gists' columns (B, M). Padding stays at the right."""
    b, n, d = embeds.shape
    m = offset.shape[0]
    i = torch.arange(m, device=embeds.device)
    ends = window_ends(lengths, m)
    gist_columns = ends + i  # after ends[i] tokens and i gists
    j = torch.arange(n, device=embeds.device)
    token_columns = j[None, :] + (ends[:, None, :] <= j[None, :, None]).sum(-1)  # (B, N): padding lands after it all
    last = (ends - 1).clamp(min=0)  # a window left empty (fewer tokens than M) copies the token before it
    gists = embeds.gather(1, last[..., None].expand(-1, -1, d)) + offset
    out = embeds.new_zeros(b, n + m, d)
    out = out.scatter(1, token_columns[..., None].expand(-1, -1, d), embeds)
    out = out.scatter(1, gist_columns[..., None].expand(-1, -1, d), gists.to(out.dtype))
    mask = torch.arange(n + m, device=embeds.device)[None, :] < (lengths + m)[:, None]
    return out, mask, gist_columns
