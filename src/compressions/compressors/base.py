"""What every soft-token compressor shares: the config fields, the input and output projections,
and the optional scaling of the M outputs to the LLM's embedding norm.

A compressor maps the context's N vectors `[B, N, d_llm]` (LLM input embeddings or hidden states)
with a padding mask `[B, N]` (True = real token, right padding) to exactly `[B, M, d_llm]`.
Subclasses implement `encode` on the compressor's own width `hidden_size`. Compressors that run the
LLM itself as their encoder (`reads_llm = True`, see encoder.py) take the pipeline instead of features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from compressions.errors import ConfigError


@dataclass
class CompressorConfig:
    num_tokens: int = field(default=32, metadata={"help": "M, the number of soft tokens out"})
    input_size: int = field(default=576, metadata={"help": "d_llm of the vectors in (set from the LLM)"})
    output_norm: float = field(default=1.0, metadata={"help": "the LLM's mean embedding norm (set from the LLM)"})
    # Off by default: trained compressors emit vectors far above the embedding norm, and a frozen LLM
    # needs that scale to decode them (Zeng & Tan, ACL 2026); forcing it was one cause of collapse here.
    normalize_output: bool = field(default=False, metadata={"help": "rescale every soft token to output_norm"})

    def validate(self) -> None:
        for name in ("num_tokens", "input_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"compressor.{name} must be >= 1, got {getattr(self, name)}")
        if self.output_norm <= 0:
            raise ConfigError(f"compressor.output_norm must be > 0, got {self.output_norm}")


@dataclass
class SoftCompressorConfig(CompressorConfig):
    hidden_size: int = field(default=256, metadata={"help": "the compressor's own width"})

    def validate(self) -> None:
        super().validate()
        if self.hidden_size < 1:
            raise ConfigError(f"compressor.hidden_size must be >= 1, got {self.hidden_size}")


class SoftCompressor(nn.Module):
    """Projection in, `encode` to M vectors, projection out, optional norm scaling."""

    config_class = SoftCompressorConfig
    reads_llm = False  # reads features [B, N, d], not the LLM
    makes_cache = False
    reads_selection = False  # its input ids start with the M ids a text selection keeps (encoder.py)

    def __init__(self, config: SoftCompressorConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.input_proj = nn.Linear(config.input_size, config.hidden_size)
        self.output_proj = nn.Linear(config.hidden_size, config.input_size)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, N, hidden) with mask (B, N) -> (B, M, hidden)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or mask.shape != x.shape[:2]:
            raise ValueError(f"expected x [B, N, d] and mask [B, N], got {tuple(x.shape)} and {tuple(mask.shape)}")
        if not mask.any(dim=1).all():
            raise ValueError("every example needs at least one real context token")
        mask = mask.bool()
        hidden = self.input_proj(x) * mask[..., None]  # (B, N, h); padding zeroed
        return rescale(self.output_proj(self.encode(hidden, mask)), self.config)  # (B, M, d_llm)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def rescale(soft: torch.Tensor, config: CompressorConfig) -> torch.Tensor:
    """Soft tokens as made, or each at the LLM's mean embedding norm when `normalize_output` is set."""
    if not config.normalize_output:
        return soft
    return soft / soft.norm(dim=-1, keepdim=True).clamp_min(1e-6) * config.output_norm


def sinusoidal_positions(length: int, dim: int, device=None) -> torch.Tensor:
    """(length, dim) fixed position code for the context: embeddings carry no order (RoPE acts inside the LLM)."""
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


def window_weights(lengths: torch.Tensor, num_windows: int, width: int) -> torch.Tensor:
    """(B, M, width) membership of each token in M windows over each example's own length.

    Window i spans [floor(i L / M), ceil((i + 1) L / M)), as torch's adaptive pooling: every window
    is non-empty, and for L < M tokens repeat. Padding (positions >= L) is in no window.
    """
    i = torch.arange(num_windows, device=lengths.device)
    start = (i[None, :] * lengths[:, None]) // num_windows  # (B, M)
    end = -((-(i[None, :] + 1) * lengths[:, None]) // num_windows)  # ceil division, (B, M)
    t = torch.arange(width, device=lengths.device)
    return (t[None, None, :] >= start[..., None]) & (t[None, None, :] < end[..., None])


def init_truncated_normal(module: nn.Module, std: float = 0.02) -> None:
    """Linear weights ~ truncated normal(std), biases 0 (the Perceiver's small-std initialisation)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
