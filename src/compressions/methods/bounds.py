"""The two bounds every table shows: the whole context (upper) and no context at all (lower)."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from compressions.methods.base import CompressedContext, ContextCompressor, Target, check_context


class FullContext(ContextCompressor):
    """Upper bound: the context as it is. Ignores the budget."""

    name = "full"

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def compress(self, context: str, question: str, budget: int | None = None, target: Target | None = None) -> CompressedContext:
        check_context(context)
        return CompressedContext(self.tokenizer(context, add_special_tokens=False).input_ids, context)


class NoContext(ContextCompressor):
    """Lower bound: the question alone."""

    name = "none"

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def compress(self, context: str, question: str, budget: int | None = None, target: Target | None = None) -> CompressedContext:
        return CompressedContext([], "")
