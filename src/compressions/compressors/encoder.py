"""Compressors whose encoder is the LLM itself (as ICAE, 500xCompressor and KV-Distill do), optionally
with its own encoder LoRA adapter, instead of a small network over layer-0 embeddings.

They take a `ContextReader` (the pipeline): `embed(ids)` gives the LLM's input embeddings, `hidden(embeds,
mask)` runs the encoder and gives its last (normed) hidden states. Each maps right-padded context ids
(B, N) with their mask to (B, M, d) soft tokens.

- `memory` (ICAE-style, Ge et al. 2024): M learned memory vectors after the context; their last hidden
  states are the soft tokens, pasted in as the decoder's input embeddings without projection.
- `pooled_encoder` (inspired by Feldman & Artzi): the encoder's hidden states mean-pooled over M windows of
  the context, then a d x d projection that starts as the identity (step 0 = contextual average pooling).
- `selected_residual` (inspired by KV-Distill): the embeddings of the M context tokens a text method keeps
  (the pipeline's `selection`: prefix truncation by default, or a question-aware one such as extractive)
  plus a zero-initialised correction read from the encoder, which sees the whole context; at step 0 the
  decoder reads exactly that method's tokens, and training only has to improve on it.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from compressions.compressors.base import CompressorConfig, rescale, window_weights


class ContextReader(Protocol):
    def embed(self, ids: torch.Tensor) -> torch.Tensor: ...

    def hidden(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor: ...


def check_context_batch(ids: torch.Tensor, mask: torch.Tensor) -> None:
    if ids.dim() != 2 or mask.shape != ids.shape:
        raise ValueError(f"expected ids and mask [B, N], got {tuple(ids.shape)} and {tuple(mask.shape)}")
    if not mask.any(dim=1).all():
        raise ValueError("every example needs at least one real context token")


class EncoderCompressor(nn.Module):
    config_class = CompressorConfig
    reads_llm = True
    makes_cache = False  # True: the output is per-layer K/V entries (gist_kv.py), not input embeddings
    reads_selection = False  # True: its input ids start with the M ids a selection keeps (the pipeline's `selection`)

    def __init__(self, config: CompressorConfig):
        super().__init__()
        config.validate()
        self.config = config

    def encode(self, reader: ContextReader, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, reader: ContextReader, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        check_context_batch(ids, mask)
        return rescale(self.encode(reader, ids, mask.bool()), self.config)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def after_context(context: torch.Tensor, mask: torch.Tensor, appended: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeds (B, N + M, d), mask (B, N + M)): M vectors placed right after each context's last real token.

    The right-padded context (B, N, d) is moved to the right (left padding) so that the appended
    vectors sit at the same columns in every row; positions then count from each row's first real token.
    """
    b, n, d = context.shape
    shift = n - mask.sum(dim=1)  # (B,) padding of each row
    columns = torch.arange(n, device=context.device)
    source = (columns[None, :] - shift[:, None]) % n  # (B, N): left-padded column j holds token j - shift
    left = context.gather(1, source[..., None].expand(-1, -1, d))
    left_mask = columns[None, :] >= shift[:, None]
    embeds = torch.cat([left, appended.to(left.dtype)], dim=1)
    return embeds, torch.cat([left_mask, left_mask.new_ones(b, appended.shape[1])], dim=1)


def read_after_context(reader: ContextReader, context: torch.Tensor, mask: torch.Tensor, appended: torch.Tensor) -> torch.Tensor:
    """Encoder hidden states (B, M, d) of M vectors placed right after each context's last real token."""
    embeds, full_mask = after_context(context, mask, appended)
    return reader.hidden(embeds, full_mask)[:, context.shape[1] :]


class MemoryCompressor(EncoderCompressor):
    def __init__(self, config: CompressorConfig):
        super().__init__(config)
        start = torch.randn(config.num_tokens, config.input_size)
        self.memory = nn.Parameter(start / start.norm(dim=-1, keepdim=True) * config.output_norm)  # (M, d)

    def encode(self, reader: ContextReader, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        memory = self.memory[None].expand(len(ids), -1, -1)  # (B, M, d)
        return read_after_context(reader, reader.embed(ids), mask, memory)


class PooledEncoderCompressor(EncoderCompressor):
    def __init__(self, config: CompressorConfig):
        super().__init__(config)
        self.proj = nn.Linear(config.input_size, config.input_size)
        nn.init.eye_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def encode(self, reader: ContextReader, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = reader.hidden(reader.embed(ids), mask)  # (B, N, d)
        windows = window_weights(mask.sum(dim=1), self.config.num_tokens, ids.shape[1]).to(hidden.dtype)  # (B, M, N)
        return self.proj(windows @ hidden / windows.sum(-1, keepdim=True))  # (B, M, d)


def prefix_positions(lengths: torch.Tensor, m: int) -> torch.Tensor:
    """(B, M) the first M token positions; a context shorter than M repeats tokens, spread evenly."""
    i = torch.arange(m, device=lengths.device)[None, :]
    return torch.where(lengths[:, None] >= m, i, i * lengths[:, None] // m)


class SelectedResidualCompressor(EncoderCompressor):
    reads_selection = True

    def __init__(self, config: CompressorConfig):
        super().__init__(config)
        self.correction = nn.Linear(config.input_size, config.input_size, bias=False)
        nn.init.zeros_(self.correction.weight)

    def encode(self, reader: ContextReader, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = self.config.num_tokens
        if ids.shape[1] <= m or not mask[:, m:].any(dim=1).all():
            raise ValueError(f"expected the {m} selected ids, then the context (see SoftPromptModel.compressor_input)")
        embeds = reader.embed(ids)  # (B, M + N, d)
        selected = embeds[:, :m]
        # copies of the selected tokens after the context: their hidden states have read all of it
        return selected + self.correction(read_after_context(reader, embeds[:, m:], mask[:, m:], selected))
