"""Gist-query compressor: M learned queries, each layer = cross-attention to the context,
self-attention among the queries, feed-forward. Unlike `cross_attention`, every layer reads the
context again and there are no repeated passes. (Inspired by gist tokens; not the Gist paper's method,
which fine-tunes the LLM itself to write gist activations.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from compressions.compressors.base import (
    SoftCompressor,
    SoftCompressorConfig,
    init_truncated_normal,
    sinusoidal_positions,
)
from compressions.compressors.layers import ResidualAttention, ResidualFeedForward
from compressions.errors import ConfigError


@dataclass
class GistSoftCompressorConfig(SoftCompressorConfig):
    heads: int = field(default=4, metadata={"help": "attention heads (divides hidden_size)"})
    layers: int = field(default=2, metadata={"help": "cross + self + feed-forward layers"})
    mlp_mult: int = field(default=4, metadata={"help": "feed-forward width / hidden_size"})

    def validate(self) -> None:
        super().validate()
        if self.heads < 1 or self.hidden_size % self.heads:
            raise ConfigError(f"compressor.heads ({self.heads}) must divide compressor.hidden_size ({self.hidden_size})")
        if self.layers < 1:
            raise ConfigError(f"compressor.layers must be >= 1, got {self.layers}")


class GistSoftCompressor(SoftCompressor):
    config_class = GistSoftCompressorConfig

    def __init__(self, config: GistSoftCompressorConfig):
        super().__init__(config)
        dim = config.hidden_size
        self.queries = nn.Parameter(torch.empty(config.num_tokens, dim))
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    ResidualAttention(dim, config.heads, cross=True),
                    ResidualAttention(dim, config.heads, cross=False),
                    ResidualFeedForward(dim, config.mlp_mult),
                ]
            )
            for _ in range(config.layers)
        )
        init_truncated_normal(self)
        nn.init.trunc_normal_(self.queries, std=0.02, a=-0.04, b=0.04)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)  # (B, N, h)
        queries = self.queries.expand(x.shape[0], -1, -1)  # (B, M, h)
        for cross, attend, feed_forward in self.layers:
            queries = feed_forward(attend(cross(queries, context, mask)))
        return queries
