"""Efficiency accounting: KV bytes, FLOPs, time and peak memory of a call, as small functions.

- KV bytes: 2 (keys and values) x layers x KV heads x head_dim x bytes per element x tokens. With
  grouped-query attention this is below the Gist paper's `2 x layers x hidden x bytes` (which assumes
  as many KV heads as query heads).
- FLOPs: `torch.utils.flop_counter` (matmuls, 2 FLOPs per multiply-add). Its registry has the CUDA
  attention kernels but not the CPU sdpa kernel, so counting runs the model with eager attention (the
  same matmuls, as bmm), then restores the implementation it had; attention outside the model (e.g. a
  compressor's `nn.MultiheadAttention`) runs sdpa's math backend, whose bmm the counter sees.
- Time: `torch.utils.benchmark.Timer.blocked_autorange` after one warm-up call, median, with the
  process's thread count (the Timer's default is one thread); it synchronises accelerators itself.
- Peak memory: on CUDA, `max_memory_allocated` above what was allocated at the start; on CPU, growth
  of the process's peak RSS (`ru_maxrss`), which stays 0 when the call stays below an earlier peak.
"""

from __future__ import annotations

import resource
import sys
from typing import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode
from transformers import PretrainedConfig, PreTrainedModel

from compressions.models.loading import eager_attention


def kv_bytes_per_token(config: PretrainedConfig, dtype: torch.dtype) -> int:
    """Bytes of keys and values one token leaves in every layer's cache."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()


def kv_bytes(config: PretrainedConfig, dtype: torch.dtype, tokens: int) -> int:
    return kv_bytes_per_token(config, dtype) * tokens


def compression_ratio(instruction_tokens: list[int], num_gist: int) -> float:
    """Mean over prompts of instruction tokens / K (the paper's "26x")."""
    return sum(n / num_gist for n in instruction_tokens) / len(instruction_tokens)


def amortised(compress_cost: float, use_cost: float, reuses: int) -> float:
    """Cost per use when one compression serves `reuses` uses."""
    return compress_cost / reuses + use_cost


def count_flops(model: PreTrainedModel, fn: Callable[[], object]) -> int:
    """FLOPs of `fn()` (which runs `model`), counted with eager attention."""
    with eager_attention(model), FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return counter.get_total_flops()


def median_seconds(fn: Callable[[], object], min_run_time: float = 1.0) -> float:
    """Median wall time of `fn()` over repeated blocks, after one warm-up call."""
    fn()
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_run_time).median


def peak_memory_bytes(fn: Callable[[], object], device: torch.device | str) -> tuple[int, str]:
    """(bytes, what was measured): peak memory `fn()` needed above its start."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start, "cuda max_memory_allocated above start"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start) * scale, "cpu peak RSS growth (ru_maxrss)"
