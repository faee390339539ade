"""`kvzip`: keep the context's KV entries the model attends to most while it reconstructs the context.

Inspired by KVzip (Kim et al., 2025, "KVzip: Query-Agnostic KV Cache Compression with Context
Reconstruction"): after reading the context, the model is teacher-forced on a prompt to repeat it followed by
the context itself; each context entry is scored by the largest attention it receives from any of those
reconstruction queries, over the query heads that share its KV head, and each layer and KV head keeps its M
best. An entry that the model needs to say the context again is one that a later question may need: the
score does not look at any question, so a document is compressed once for all of them.
A context longer than `segment` tokens is rebuilt segment by segment, as the paper does for long contexts:
each segment is read after a cue (the repeat prompt for the first, for the others a prompt to go on from the
previous segment's last `overlap` tokens) on top of the whole context's cache, each at the positions right
after the context, and scores only its own segment's entries. The reconstruction's positions thus end at
context + cue + segment, not twice the context (a 4K-token document stays inside SmolLM2's 8,192 positions).
Differences: scored after reading the whole context, as this project's other presses; the prompts are ours;
the attention is the model's own softmax over every entry (kvpress re-normalises over the sinks, the segment
and the cue); each segment is read in chunks of `chunk` queries, keeping a running maximum, so that no
segment x context attention map is held per layer at once; no head-level (context-independent) variant.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.kv_cache import KVCompressor
from compressions.models.generation import copy_cache

REPEAT_PROMPT = "\n\nRepeat the previous context exactly.\n"
CONTINUE_PROMPT = "\n\nGo on repeating the previous context exactly, from the words:"  # + the previous segment's end


class KVzip(KVCompressor):
    name = "kvzip"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        share_prefix: bool = True,
        repeat_prompt: str = REPEAT_PROMPT,
        chunk: int = 128,
        segment: int = 2048,
        overlap: int = 8,
    ):
        super().__init__(tokenizer, share_prefix)
        for option, value, least in (("chunk", chunk, 1), ("segment", segment, 1), ("overlap", overlap, 0)):
            if value < least:
                raise CompressionsError(f"kvzip {option} must be >= {least}, got {value}")
        self.repeat_ids = tokenizer(repeat_prompt, add_special_tokens=False).input_ids
        self.continue_ids = tokenizer(CONTINUE_PROMPT, add_special_tokens=False).input_ids
        self.chunk, self.segment, self.overlap = chunk, segment, overlap

    def split(self, ids: list[int], after: list[int]) -> tuple[list[int], list[int]]:
        return ids, ids  # the window is the context itself, rebuilt after its cues; the question (`after`) is never read

    def window_attention(self, model: PreTrainedModel, cache: DynamicCache, window: list[int], start: int, context: slice) -> torch.Tensor:
        """(L, heads, 1, C): each context entry's largest attention from the queries that rebuild its segment."""
        context_kv = [(layer.keys, layer.values) for layer in cache.layers]
        rows = []
        for begin in range(0, len(window), self.segment):
            part = window[begin : begin + self.segment]
            cue = self.continue_ids + window[max(begin - self.overlap, 0) : begin] if begin else self.repeat_ids
            # each segment reads the context alone, without an earlier segment's reconstruction; the last one reads
            # on the caller's cache itself, whose entries after the context are dropped
            last = begin + self.segment >= len(window)
            reading = cache if last else copy_cache(model, context_kv, 1)
            own = slice(context.start + begin, context.start + begin + len(part))
            rows.append(self._largest(model, reading, cue + part, start, own))
        return torch.cat(rows, dim=-1)

    def _largest(self, model: PreTrainedModel, cache: DynamicCache, window: list[int], start: int, entries: slice) -> torch.Tensor:
        """(L, heads, 1, entries): the largest attention to `entries` from any of the window's queries."""
        best = None
        for begin in range(0, len(window), self.chunk):
            part = self._attention(model, cache, window[begin : begin + self.chunk], start + begin)[..., entries]  # (L, H, chunk, E)
            top = part.amax(dim=2, keepdim=True)
            best = top if best is None else torch.maximum(best, top)
        return best

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        layers, n_kv, n = keys.shape[:3]
        return attention.reshape(layers, n_kv, -1, n).amax(dim=2)  # over the query heads of each KV head
