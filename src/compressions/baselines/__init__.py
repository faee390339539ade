"""Text-level context compressors, by name. Each module holds one method; this dict joins them."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from compressions.baselines.base import CompressedContext, ContextCompressor, check_budget
from compressions.baselines.bounds import FullContext, NoContext
from compressions.errors import CompressionsError

METHODS = {"full": FullContext, "none": NoContext}
UNBUDGETED = {"full", "none"}  # the bounds ignore the budget


def check_method(name: str, budget: int | None) -> None:
    if name not in METHODS:
        raise CompressionsError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    check_budget(budget, required=name not in UNBUDGETED)


def build_method(
    name: str, tokenizer: PreTrainedTokenizerBase, budget: int | None = None, **options
) -> ContextCompressor:
    check_method(name, budget)
    return METHODS[name](tokenizer, **options)


__all__ = ["METHODS", "UNBUDGETED", "CompressedContext", "ContextCompressor", "build_method", "check_method"]
