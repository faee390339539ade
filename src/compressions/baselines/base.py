"""The interface every text-level context compressor implements.

Given a context, its question and a budget of M target-model tokens, a method returns what the
target model will read in place of the context. Token counts are always in the target tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from compressions.errors import CompressionsError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CompressedContext:
    token_ids: list[int]  # what the target model reads, in its own tokenizer
    text: str
    seconds: float = 0.0  # time spent compressing
    # soft methods: (K, d) vectors the model reads in place of the first K token_ids (placeholders)
    embeddings: torch.Tensor | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


class ContextCompressor(Protocol):
    name: str

    def compress(self, context: str, question: str, budget: int | None) -> CompressedContext: ...


def check_budget(budget: int | None, required: bool = True) -> None:
    if budget is None:
        if required:
            raise CompressionsError("this method needs a token budget: pass --budget M (M >= 1)")
        return
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise CompressionsError(f"budget must be an integer >= 1, got {budget!r}")


def check_context(context: str) -> None:
    if not context or not context.strip():
        raise CompressionsError("empty context: nothing to compress")
