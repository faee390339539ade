"""Learned soft-token compressors: a context -> M soft tokens a frozen LLM reads instead.

One architecture per module; this dict joins them (name -> compressor class; its config class is
`cls.config_class`). Classes with `reads_llm` run the LLM as their encoder (encoder.py); the others read
the context's N vectors. Those with `makes_cache` (gist_kv.py, restore.py) give per-layer keys and values
the decoder holds in its cache instead of soft tokens in its input.
"""

from __future__ import annotations

from compressions.compressors.base import CompressorConfig, SoftCompressor
from compressions.compressors.conv import ConvCompressor
from compressions.compressors.cross_attention import CrossAttentionCompressor
from compressions.compressors.encoder import (
    EncoderCompressor,
    MemoryCompressor,
    PooledEncoderCompressor,
    SelectedResidualCompressor,
)
from compressions.compressors.gist_compressor import GistSoftCompressor
from compressions.compressors.gist_kv import GistKVCompressor
from compressions.compressors.pooling import PoolingCompressor
from compressions.compressors.restore import RestoreCompressor
from compressions.errors import ConfigError

ARCHITECTURES: dict[str, type[SoftCompressor | EncoderCompressor]] = {
    "cross_attention": CrossAttentionCompressor,
    "conv": ConvCompressor,
    "pooling": PoolingCompressor,
    "gist_compressor": GistSoftCompressor,
    "memory": MemoryCompressor,
    "pooled_encoder": PooledEncoderCompressor,
    "selected_residual": SelectedResidualCompressor,
    "gist_kv": GistKVCompressor,
    "restore": RestoreCompressor,
}


def compressor_class(arch: str) -> type[SoftCompressor | EncoderCompressor]:
    if arch not in ARCHITECTURES:
        raise ConfigError(f"unknown compressor arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch]


def build_compressor(arch: str, **fields) -> SoftCompressor | EncoderCompressor:
    """A compressor from its arch name and config fields; unknown fields fail with their name."""
    cls = compressor_class(arch)
    known = {f for f in cls.config_class.__dataclass_fields__}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"compressor {arch!r} has no option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(cls.config_class(**fields))


__all__ = ["ARCHITECTURES", "CompressorConfig", "EncoderCompressor", "SoftCompressor", "build_compressor", "compressor_class"]
