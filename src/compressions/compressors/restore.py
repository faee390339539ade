"""`restore`: a question-agnostic KV selection whose kept entries are adapted, plus R learned slots
(inspired by KV-Distill, Chari et al. 2025, and RestoreKV in NVIDIA's kvpress).

The encoder (the LLM with its encoder adapter) reads `prompt prefix + context [+ R slots]` once. A scorer
ranks the context's tokens from that forward's hidden states and the M - R best keep their K/V entries in
every layer and KV head; the R slots after the context (inputs: the embeddings of the context's first R
tokens plus a learned, zero-initialised vector each, as `gist_kv`'s gists) add theirs. The frozen decoder
holds its own cache of the prompt prefix, then these M entries, and reads the question at the position
after the whole context and slots, as it reads a KV method's kept cache.

- The scorer (`scorer`): the probe of a `compressions train selector` folder (methods `selector`), copied
  into the compressor's weights so a checkpoint stands alone; without one, the first M - R tokens (what
  `prefix` keeps). It scores under no gradient: the selection is not trained here, only what is kept.
- Training changes the kept entries through the encoder adapter (KV-Distill's LoRA-adapted K/V): a kept
  token's entries can carry what the dropped tokens before it said. With the adapter at zero (step 0) and
  R = 0, the decoder reads exactly the selection's kept cache (the tests check it against `selector`).
  R > 0 slots are not empty at step 0: they re-read the first R tokens after the whole context.

Differences from KV-Distill: the selection is the answer probe's (trained apart, frozen), one selection
shared by all layers and heads, and the adapter is the encoder's alone (the decoder is frozen).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from compressions.compressors.base import CompressorConfig
from compressions.compressors.encoder import EncoderCompressor, after_context, check_context_batch, prefix_positions
from compressions.compressors.gist_kv import CacheReader, GistEntries, entries_at
from compressions.compressors.selector import CONFIG, WEIGHTS, Probe
from compressions.errors import ConfigError
from compressions.models.generation import position_ids
from compressions.store.saved import read_saved


class ScoringReader(CacheReader, Protocol):
    def frozen_states(self, embeds: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


@dataclass
class RestoreConfig(CompressorConfig):
    slots: int = field(default=0, metadata={"help": "R: learned slots after the context; the selection keeps M - R"})
    scorer: str | None = field(default=None, metadata={"help": "a `train selector` folder whose probe ranks the tokens (none: the first tokens)"})
    scorer_layers: list[int] = field(default_factory=list, metadata={"help": "the hidden states the probe reads (set from `scorer`)"})

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.slots < self.num_tokens:
            raise ConfigError(f"compressor.slots must be in [0, M) = [0, {self.num_tokens}), got {self.slots}")


class RestoreCompressor(EncoderCompressor):
    makes_cache = True
    config_class = RestoreConfig

    def __init__(self, config: RestoreConfig):
        super().__init__(config)
        self.offset = nn.Parameter(torch.zeros(config.slots, config.input_size))  # (R, d)
        self.probe = self._probe(config)

    @staticmethod
    def _probe(config: RestoreConfig) -> Probe | None:
        """The scorer's probe read from its folder, or an empty one of the recorded size that a saved
        checkpoint fills (so a checkpoint loads where the selector folder is absent)."""
        if config.scorer is None:
            return None
        folder = Path(config.scorer)
        if (folder / WEIGHTS).is_file() and (folder / CONFIG).is_file():
            config.scorer_layers = read_saved(folder / CONFIG)["config"]["layers"]
            weights = read_saved(folder / WEIGHTS, "tensors")
            return Probe(weights["mean"], weights["std"], weights["weight"], weights["bias"]).requires_grad_(False)
        if not config.scorer_layers:
            raise ConfigError(f"compressor.scorer {config.scorer}: no {WEIGHTS} there; make it with `compressions train selector --out {config.scorer}`")
        size = len(config.scorer_layers) * config.input_size
        return Probe(torch.zeros(size), torch.ones(size)).requires_grad_(False)

    def scores(self, hidden: tuple[torch.Tensor, ...], columns: torch.Tensor) -> torch.Tensor:
        """(B, N) the score of each context token (its column in the encoder's input: (B, N)); higher is kept."""
        if self.probe is None:
            return -columns.float()  # the earliest first
        if max(self.config.scorer_layers) >= len(hidden):
            raise ConfigError(f"compressor.scorer reads hidden state {max(self.config.scorer_layers)}; this LLM has {len(hidden)}")
        features = torch.cat([hidden[layer] for layer in self.config.scorer_layers], dim=-1).float()  # (B, T, F)
        if features.shape[-1] != self.probe.mean.shape[0]:
            raise ConfigError(f"compressor.scorer was trained on {self.probe.mean.shape[0]} features; this LLM gives {features.shape[-1]}")
        picked = features.gather(1, columns[..., None].expand(-1, -1, features.shape[-1]))
        return self.probe(picked)

    def forward(self, reader: ScoringReader, ids: torch.Tensor, mask: torch.Tensor) -> GistEntries:
        check_context_batch(ids, mask)
        mask = mask.bool()
        b, n = ids.shape
        k, r = self.config.num_tokens - self.config.slots, self.config.slots
        embeds = reader.embed(ids)  # (B, N, d)
        lengths = mask.sum(dim=1)
        slots = embeds.gather(1, prefix_positions(lengths, r)[..., None].expand(-1, -1, embeds.shape[-1])) + self.offset
        body, body_mask = after_context(embeds, mask, slots)  # the context left-padded, then the R slots
        head = torch.tensor(reader.prefix_ids(), device=ids.device)
        p = len(head)
        inputs = torch.cat([reader.embed(head)[None].expand(b, -1, -1), body], dim=1)
        full_mask = torch.cat([mask.new_ones(b, p), body_mask], dim=1)
        cache, hidden = reader.encode_cache(inputs, full_mask, all_layers=True)
        # the scorer reads the frozen LLM, so that training changes what is kept, never which tokens
        frozen = reader.frozen_states(inputs, full_mask) if self.probe is not None else ()
        shift = n - lengths  # each row's padding, before its context
        token = torch.arange(n, device=ids.device)[None, :]
        context_columns = (p + shift[:, None] + token).clamp(max=inputs.shape[1] - 1)  # (B, N): context token j's column (padding: any)
        real = token < lengths[:, None]
        with torch.no_grad():
            ranked = self.scores(frozen or hidden, context_columns).masked_fill(~real, float("-inf"))
        kept = ranked.topk(min(k, n), dim=1).indices.sort(dim=1).values  # (B, k) token indices, in order
        if kept.shape[1] < k:  # a batch narrower than M - R: pad to k with entries no one reads
            kept = torch.cat([kept, kept.new_zeros(b, k - kept.shape[1])], dim=1)
        entry_mask = torch.cat([real.gather(1, kept) & (torch.arange(k, device=ids.device) < n), mask.new_ones(b, r)], dim=1)
        columns = torch.cat([context_columns.gather(1, kept), torch.arange(p + n, p + n + r, device=ids.device).expand(b, -1)], dim=1)

        def at_kept(entries: torch.Tensor) -> torch.Tensor:  # unread entries are zeros, whatever the batch
            return entries_at(entries, columns) * entry_mask[:, None, :, None]

        positions = position_ids(full_mask)
        return GistEntries(
            keys=[at_kept(layer.keys) for layer in cache.layers],
            values=[at_kept(layer.values) for layer in cache.layers],
            positions=positions.gather(1, columns) * entry_mask,
            hidden=hidden[-1].gather(1, columns[..., None].expand(-1, -1, hidden[-1].shape[-1])) * entry_mask[..., None],
            mask=entry_mask,
            after=positions[:, -1] + 1,  # after the whole context and the slots
        )
