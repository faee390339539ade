"""Pooling compressor: the context is cut into M windows over its own length, and each soft token
is a learned weighted average of its window (scores from a linear layer, softmax inside the window).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compressions.compressors.base import SoftCompressor, SoftCompressorConfig, window_weights


@dataclass
class PoolingConfig(SoftCompressorConfig):
    pass


class PoolingCompressor(SoftCompressor):
    config_class = PoolingConfig

    def __init__(self, config: PoolingConfig):
        super().__init__(config)
        self.score = nn.Linear(config.hidden_size, 1)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        windows = window_weights(mask.sum(dim=1), self.config.num_tokens, x.shape[1])  # (B, M, N)
        scores = self.score(x).transpose(1, 2).expand_as(windows)  # (B, M, N)
        weights = scores.masked_fill(~windows, float("-inf")).softmax(dim=-1)
        return weights @ self.value(x)  # (B, M, h)
