"""`prefix`: the first M tokens of the context (the naive truncation every method must beat)."""

from __future__ import annotations

from compressions.methods.base import BudgetedCompressor


class Prefix(BudgetedCompressor):
    name = "prefix"

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        return ids[:budget]
