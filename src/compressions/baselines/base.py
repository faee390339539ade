"""The interface every text-level context compressor implements.

Given a context, its question and a budget of M target-model tokens, a method returns what the
target model will read in place of the context. Token counts are always in the target tokenizer.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

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


class ContextCompressor:
    """What every context method is: `compress` one context; `compress_many` is the harness's entry point."""

    name: str

    def compress(self, context: str, question: str, budget: int | None) -> CompressedContext:
        raise NotImplementedError

    def compress_many(
        self, contexts: list[str], questions: list[str], budget: int | None, progress: bool = False
    ) -> list[CompressedContext]:
        """One result per (context, question), in order. One at a time here; a method that batches overrides it."""
        pairs = tqdm(zip(contexts, questions, strict=True), total=len(contexts), desc="compress", unit="ex", disable=not progress)
        return [self.compress(context, question, budget) for context, question in pairs]


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


def require(module: str, method: str, extra: str):
    """Import an optional dependency, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CompressionsError(
            f"method {method!r} needs the optional package {module!r}: pip install 'compressions[{extra}]'"
        ) from None


class BudgetedCompressor(ContextCompressor):
    """Shared frame of the budgeted methods: checks, a clock, and contexts that already fit kept whole.

    Subclasses implement `select(context, question, budget, ids) -> kept ids` for contexts longer
    than the budget (a method that batches overrides `compress_many` instead); every result goes
    through `result`, which checks it against the budget, so no method can overshoot.
    """

    name = "budgeted"

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def compress(self, context: str, question: str, budget: int | None) -> CompressedContext:
        check_context(context)
        check_budget(budget)
        start = time.perf_counter()
        ids = self.tokenizer(context, add_special_tokens=False).input_ids
        kept = ids if len(ids) <= budget else self.select(context, question, budget, ids)
        return self.result(kept, budget, time.perf_counter() - start)

    def result(self, kept: list[int], budget: int, seconds: float) -> CompressedContext:
        if len(kept) > budget:
            raise AssertionError(f"{self.name} kept {len(kept)} tokens for a budget of {budget}")
        return CompressedContext(kept, self.tokenizer.decode(kept), seconds)

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        raise NotImplementedError
