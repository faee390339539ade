"""The frame of the KV-cache methods: read the prompt prefix and the whole context once, score every
context entry of the reader's cache per layer and KV head, and keep the M best of each.

What a KV method returns is not text: every (layer, KV head) keeps its own M context entries, at the
rotary positions they were computed at (`KeptCache`), so the kept cache is a regular
[n_kv, prefix + M, head_dim] tensor per layer. Only the context is compressed and counted: the prompt
prefix (instruction, solved examples) is kept whole, and the text after the context (question, answer
anchor) is read again after the kept entries, at the positions it has after the whole context. The
reading of the context is the method's cost (compression seconds). A method is given the target model
and prompt when it compresses (`Target`), a reader's adapter included: the kept entries are that reader's
own cache.

NVIDIA's kvpress collects these methods ("presses"); it needs transformers < 5.3, so the few we use are
written here against the public forward: a `DynamicCache` filled by a forward, attention weights from
`output_attentions` under eager attention (the only implementation that returns them).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.base import CompressedContext, ContextCompressor, Target, check_budget, check_context
from compressions.models.generation import copy_cache, prefill
from compressions.models.kept_cache import KeptCache
from compressions.models.loading import eager_attention
from compressions.progress import tqdm


class ContextRead(NamedTuple):
    """What reading the context left, for a method's `select` beyond keys and attention."""

    model: PreTrainedModel
    values: torch.Tensor  # (L, n_kv, C, head_dim), as the cache holds them
    hidden: tuple[torch.Tensor, ...] | None  # every layer's input (1, C, d) and the last output (`reads_hidden`), else None
    end: int  # the position after the context: where a question's first token is read


class KVCompressor(ContextCompressor):
    """Subclasses give `scores`; those that read attention also give `split` (which queries to score with)."""

    name = "kv"
    output = "kv"
    reads_hidden = False  # whether `select` needs the context's hidden states (a learned scorer reads them)

    def __init__(self, tokenizer: PreTrainedTokenizerBase, share_prefix: bool = True):
        self.tokenizer = tokenizer
        # the prompt prefix is read once for every question (kept by the target), as generation does for the
        # text methods; share_prefix=False reads it again for each (a lone request: benchmarks of one question)
        self.share_prefix = share_prefix

    def split(self, ids: list[int], after: list[int]) -> tuple[list[int], list[int]]:
        """(tokens read first, window of tokens read after them whose attention to the context is scored),
        from the context ids and the prompt's ids after the context. No window by default."""
        return ids, []

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        """(L, n_kv, C), higher is kept first, from the context's keys (L, n_kv, C, head_dim) and the window's
        attention weights to the context (L, heads, window, C) when `split` gives a window (else None)."""
        raise NotImplementedError

    def select(self, keys: torch.Tensor, attention: torch.Tensor | None, read: ContextRead) -> torch.Tensor:
        """`scores`, for a method that also reads the model, the values or the context's hidden states."""
        return self.scores(keys, attention)

    def compress(self, context: str, question: str, budget: int | None, target: Target | None = None) -> CompressedContext:
        return self.compress_many([context], [question], budget, target=target)[0]

    def compress_many(
        self, contexts: list[str], questions: list[str], budget: int | None, progress: bool = False, target: Target | None = None
    ) -> list[CompressedContext]:
        """One context at a time (batch size 1): no padding, so each context's entries and scores are those
        of its own forward, and the code stays simple; generation from the kept caches is batched."""
        if target is None:
            raise CompressionsError(f"method {self.name!r} keeps entries of the target model's own KV cache: pass target=Target(model, prompt)")
        for context in contexts:
            check_context(context)
        check_budget(budget)
        pairs = tqdm(zip(contexts, questions, strict=True), total=len(contexts), desc="compress", unit="ex", disable=not progress)
        return [self._compress(context, question, budget, target) for context, question in pairs]

    @torch.no_grad()
    def _compress(self, context: str, question: str, budget: int, target: Target) -> CompressedContext:
        start = time.perf_counter()
        model = target.model
        prefix_ids, after = target.prompt.ids(question)
        ids = self.tokenizer(context, add_special_tokens=False).input_ids
        prefix = self._prefix(target, prefix_ids)  # shared: the first question pays it
        p, c = len(prefix_ids), len(ids)
        head, window = self.split(ids, after) if c > budget else (ids, [])  # a context that fits is kept whole
        cache = copy_cache(model, prefix, 1)
        out = self._forward(model, cache, head, p, output_hidden_states=self.reads_hidden)
        attention = self.window_attention(model, cache, window, p + len(head), slice(p, p + c)) if window else None
        # the window's own entries, if any, come after the context's and are dropped here
        keys = torch.stack([layer.keys[0, :, p : p + c] for layer in cache.layers])  # (L, n_kv, C, hd)
        values = torch.stack([layer.values[0, :, p : p + c] for layer in cache.layers])
        if c > budget:
            read = ContextRead(model, values, out.hidden_states if self.reads_hidden else None, p + c)
            index = self.select(keys, attention, read).topk(budget, dim=-1).indices.sort(dim=-1).values  # (L, n_kv, M)
        else:
            index = torch.arange(c, device=keys.device).expand(*keys.shape[:2], c)
        gather = index[..., None].expand(-1, -1, -1, keys.shape[-1])  # (L, n_kv, k, hd)
        kept = KeptCache(prefix, keys.gather(2, gather), values.gather(2, gather), index + p, p + c)
        if c > budget:  # one placeholder per kept entry: the slot the reader's cache holds
            token_ids, text = [self._placeholder()] * budget, f"<{budget} of {c} KV entries per layer and head>"
        else:
            token_ids, text = ids, context
        return CompressedContext(token_ids, text, time.perf_counter() - start, kv=kept)

    def _prefix(self, target: Target, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if not ids:
            raise CompressionsError(f"method {self.name!r} needs prompt text before the context (its KV is kept whole)")
        return target.prefix_cache(ids) if self.share_prefix else prefill(target.model, ids)

    @staticmethod
    def _forward(model: PreTrainedModel, cache: DynamicCache, ids: list[int], start: int, **options):
        """Read `ids` at positions start, start+1, ... on top of `cache` (which the forward extends)."""
        positions = torch.arange(start, start + len(ids), device=model.device)[None]  # (1, T)
        return model(
            input_ids=torch.tensor([ids], device=model.device), position_ids=positions, cache=cache,
            use_cache=True, logits_to_keep=1, **options,
        )  # fmt: skip

    def window_attention(self, model: PreTrainedModel, cache: DynamicCache, window: list[int], start: int, context: slice) -> torch.Tensor:
        """(L, heads, window, C): the attention of the window's queries, read at `start` on top of `cache`,
        to the context's entries (a method may reduce over the queries as it reads them, keeping one row)."""
        return self._attention(model, cache, window, start)[..., context]

    def _attention(self, model: PreTrainedModel, cache: DynamicCache, window: list[int], start: int) -> torch.Tensor:
        """(L, heads, window, entries): each layer's attention weights of the window's queries."""
        with eager_attention(model):
            out = self._forward(model, cache, window, start, output_attentions=True)
        return torch.stack([weights[0] for weights in out.attentions]).float()

    def _placeholder(self) -> int:
        pad = self.tokenizer.pad_token_id
        return self.tokenizer.eos_token_id if pad is None else pad
