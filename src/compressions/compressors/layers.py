"""Pre-norm residual attention and feed-forward blocks that the query-based compressors stack."""

from __future__ import annotations

import torch
from torch import nn


class ResidualAttention(nn.Module):
    """x + Attention(LN(x), LN(context)); self-attention when no context is given."""

    def __init__(self, dim: int, heads: int, cross: bool):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.context_norm = nn.LayerNorm(dim) if cross else None
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        nn.init.trunc_normal_(self.attn.in_proj_weight, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(self.attn.in_proj_bias)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        q = self.norm(x)
        kv = q if self.context_norm is None else self.context_norm(context)
        padding = None if context_mask is None else ~context_mask  # MHA: True = ignore
        out, _ = self.attn(q, kv, kv, key_padding_mask=padding, need_weights=False)
        return x + out


class ResidualFeedForward(nn.Module):
    """x + MLP(LN(x)), GELU, `mult` x wider inside."""

    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mult * dim), nn.GELU(), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)
