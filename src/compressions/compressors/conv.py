"""Convolutional compressor: strided depthwise + pointwise 1D convolutions shorten the context,
then pooling over M windows of each example's own length gives exactly M vectors.

Positions past an example's length are zeroed after every layer, so padding never leaks into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from compressions.compressors.base import SoftCompressor, SoftCompressorConfig, window_weights
from compressions.errors import ConfigError


@dataclass
class ConvConfig(SoftCompressorConfig):
    layers: int = field(default=2, metadata={"help": "depthwise + pointwise convolution layers"})
    kernel_size: int = field(default=5, metadata={"help": "depthwise kernel (odd)"})
    stride: int = field(default=2, metadata={"help": "depthwise stride (sequence shrinks by about this per layer)"})

    def validate(self) -> None:
        super().validate()
        if self.layers < 1 or self.stride < 1:
            raise ConfigError(f"compressor.layers and compressor.stride must be >= 1, got {self.layers}, {self.stride}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"compressor.kernel_size must be odd, got {self.kernel_size}")


class SeparableConv(nn.Module):
    """Depthwise strided conv, pointwise conv, GELU; lengths follow the conv arithmetic."""

    def __init__(self, dim: int, kernel_size: int, stride: int):
        super().__init__()
        self.padding, self.kernel_size, self.stride = kernel_size // 2, kernel_size, stride
        self.depthwise = nn.Conv1d(dim, dim, kernel_size, stride, self.padding, groups=dim)
        self.pointwise = nn.Conv1d(dim, dim, 1)
        self.act = nn.GELU()

    def out_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + 2 * self.padding - self.kernel_size) // self.stride + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.act(self.pointwise(self.depthwise(x)))  # (B, h, N')
        lengths = self.out_lengths(lengths)
        keep = torch.arange(x.shape[-1], device=x.device)[None, :] < lengths[:, None]  # (B, N')
        return x * keep[:, None, :], lengths


class ConvCompressor(SoftCompressor):
    config_class = ConvConfig

    def __init__(self, config: ConvConfig):
        super().__init__(config)
        self.convs = nn.ModuleList(
            SeparableConv(config.hidden_size, config.kernel_size, config.stride) for _ in range(config.layers)
        )

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1)  # (B,); right padding
        h = x.transpose(1, 2)  # (B, h, N)
        for conv in self.convs:
            h, lengths = conv(h, lengths)
        windows = window_weights(lengths, self.config.num_tokens, h.shape[-1]).float()  # (B, M, N')
        pooled = windows @ h.transpose(1, 2)  # (B, M, h)
        return pooled / windows.sum(dim=-1, keepdim=True)
