"""`suffix`: the last M tokens of the context."""

from __future__ import annotations

from compressions.methods.base import BudgetedCompressor


class Suffix(BudgetedCompressor):
    name = "suffix"

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        return ids[-budget:]
