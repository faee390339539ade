"""`streaming`: attention sinks and the most recent entries of the context's KV cache.

Inspired by StreamingLLM (Xiao et al., 2023, "Efficient Streaming Language Models with Attention Sinks"):
keep the first few entries, which take a large share of every query's attention ("sinks"), and a window
of the most recent ones. The sequence's real first tokens are in the prompt prefix, which the KV frame
keeps whole; as in kvpress's StreamingLLMPress, `sinks` counts the first entries of the compressed part
(the context), and the rest of the budget goes to its last entries. The same positions in every layer
and head, as in the paper; one-shot after reading the context, not evicting while streaming.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.kv_cache import KVCompressor


class StreamingLLM(KVCompressor):
    name = "streaming"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        share_prefix: bool = True,
        sinks: int = 4,
    ):
        super().__init__(tokenizer, share_prefix)
        if sinks < 0:
            raise CompressionsError(f"streaming sinks must be >= 0, got {sinks}")
        self.sinks = sinks

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        n = keys.shape[2]
        position = torch.arange(n, device=keys.device, dtype=torch.float32)
        # sinks outrank every recent entry, the earliest first; then the later an entry, the better
        score = torch.where(position < self.sinks, 2 * n - position, position)
        return score.expand(*keys.shape[:2], n)
