"""Perceiver-style compressor (inspired by Jaegle et al. 2021, "Perceiver"): M learned latents with
learned position encodings cross-attend to the context, then self-attention + MLP blocks refine
them; the whole pass repeats `passes` times (iterative attention), with weights shared or not.
Initialisation follows the paper's choice: truncated normal with a small std (0.02).
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
class CrossAttentionConfig(SoftCompressorConfig):
    heads: int = field(default=4, metadata={"help": "attention heads (divides hidden_size)"})
    self_layers: int = field(default=2, metadata={"help": "self-attention + MLP blocks per pass"})
    passes: int = field(default=3, metadata={"help": "iterative cross-attention passes over the context"})
    share_weights: bool = field(default=True, metadata={"help": "passes after the first reuse its weights"})
    mlp_mult: int = field(default=4, metadata={"help": "MLP width / hidden_size"})

    def validate(self) -> None:
        super().validate()
        if self.heads < 1 or self.hidden_size % self.heads:
            raise ConfigError(f"compressor.heads ({self.heads}) must divide compressor.hidden_size ({self.hidden_size})")
        if self.passes < 1 or self.self_layers < 0:
            raise ConfigError(f"compressor.passes must be >= 1 and self_layers >= 0, got {self.passes}, {self.self_layers}")


class LatentPass(nn.Module):
    """Cross-attention + MLP, then `self_layers` x (self-attention + MLP)."""

    def __init__(self, config: CrossAttentionConfig):
        super().__init__()
        dim = config.hidden_size
        self.cross = ResidualAttention(dim, config.heads, cross=True)
        self.cross_mlp = ResidualFeedForward(dim, config.mlp_mult)
        self.blocks = nn.ModuleList(
            nn.ModuleList([ResidualAttention(dim, config.heads, cross=False), ResidualFeedForward(dim, config.mlp_mult)])
            for _ in range(config.self_layers)
        )

    def forward(self, latents: torch.Tensor, context: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        latents = self.cross_mlp(self.cross(latents, context, mask))
        for attention, mlp in self.blocks:
            latents = mlp(attention(latents))
        return latents


class CrossAttentionCompressor(SoftCompressor):
    config_class = CrossAttentionConfig

    def __init__(self, config: CrossAttentionConfig):
        super().__init__(config)
        self.latents = nn.Parameter(torch.empty(config.num_tokens, config.hidden_size))
        self.latent_positions = nn.Parameter(torch.empty(config.num_tokens, config.hidden_size))
        n_blocks = 1 if config.share_weights else config.passes
        self.passes = nn.ModuleList(LatentPass(config) for _ in range(n_blocks))
        init_truncated_normal(self)
        for p in (self.latents, self.latent_positions):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        context = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device)  # (B, N, h)
        latents = (self.latents + self.latent_positions).expand(x.shape[0], -1, -1)  # (B, M, h)
        for i in range(self.config.passes):
            latents = self.passes[min(i, len(self.passes) - 1)](latents, context, mask)
        return latents
