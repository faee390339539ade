"""`kvzip`: keep the context's KV entries the model attends to most while it reconstructs the context.

Inspired by KVzip (Kim et al., 2025, "KVzip: Query-Agnostic KV Cache Compression with Context
Reconstruction"): after reading the context, the model is teacher-forced on a prompt to repeat it followed by
the context itself; each context entry is scored by the largest attention it receives from any of those
reconstruction queries, over the query heads that share its KV head, and each layer and KV head keeps its M
best. An entry that the model needs to say the context again is one that a later question may need: the
score does not look at any question, so a document is compressed once for all of them.
Differences: one-shot after reading the whole context, as this project's other presses (the paper also
scores long contexts chunk by chunk as they are prefilled); the repeat prompt is ours (`repeat_prompt`); the
reconstruction is read in chunks of `chunk` queries, keeping a running maximum, so that a 4K-token context
never holds a 4K x 8K attention map per layer at once; no head-level (context-independent) variant.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.kv_cache import KVCompressor

REPEAT_PROMPT = "\n\nRepeat the previous context exactly.\n"


class KVzip(KVCompressor):
    name = "kvzip"

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, share_prefix: bool = True, repeat_prompt: str = REPEAT_PROMPT, chunk: int = 128
    ):
        super().__init__(tokenizer, share_prefix)
        if chunk < 1:
            raise CompressionsError(f"kvzip chunk must be >= 1, got {chunk}")
        self.repeat_ids = tokenizer(repeat_prompt, add_special_tokens=False).input_ids
        self.chunk = chunk

    def split(self, ids: list[int], after: list[int]) -> tuple[list[int], list[int]]:
        return ids, self.repeat_ids + ids  # the question (`after`) is never read

    def window_attention(self, model: PreTrainedModel, cache: DynamicCache, window: list[int], start: int, context: slice) -> torch.Tensor:
        """(L, heads, 1, C): each context entry's largest attention from the reconstruction's queries."""
        best = None
        for begin in range(0, len(window), self.chunk):
            part = self._attention(model, cache, window[begin : begin + self.chunk], start + begin)[..., context]  # (L, H, chunk, C)
            top = part.amax(dim=2, keepdim=True)
            best = top if best is None else torch.maximum(best, top)
        return best

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        layers, n_kv, n = keys.shape[:3]
        return attention.reshape(layers, n_kv, -1, n).amax(dim=2)  # over the query heads of each KV head
