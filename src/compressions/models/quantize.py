"""int8 storage of compressed contexts (gist KV, kept caches, soft tokens): symmetric absmax quantisation
with one fp32 scale per vector along the last dimension (per token and head for KV, as KIVI quantises
values; a per-channel scale over tokens, as KIVI does for keys, would cost as much as the data for 1-10
gists). Pure functions; the error of each element is at most half its vector's scale."""

from __future__ import annotations

import torch


def quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 values, fp32 scales with the last dim 1): x ~ q * scale."""
    scale = x.detach().abs().amax(dim=-1, keepdim=True).float().clamp_min(1e-12) / 127
    return torch.round(x.float() / scale).clamp(-127, 127).to(torch.int8), scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (q.float() * scale).to(dtype)


def int8_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """What a reader gets back from int8 storage, in x's dtype."""
    return dequantize_int8(*quantize_int8(x), dtype=x.dtype)


def int8_bytes(x: torch.Tensor) -> int:
    """Bytes of x stored as int8 plus its scales."""
    return x.numel() + 4 * (x.numel() // x.shape[-1])
