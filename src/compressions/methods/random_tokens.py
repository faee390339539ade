"""`random`: M tokens of the context drawn at random, kept in their original order.

The draw is seeded by (seed, context, question), so a result does not depend on which questions
ran before it or on the process (Python's own `hash` of a string changes between runs).
"""

from __future__ import annotations

import hashlib
import random

from transformers import PreTrainedTokenizerBase

from compressions.methods.base import BudgetedCompressor


class RandomTokens(BudgetedCompressor):
    name = "random"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, seed: int = 0):
        super().__init__(tokenizer)
        self.seed = seed

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        key = hashlib.sha256(f"{self.seed}\0{context}\0{question}".encode()).digest()
        positions = sorted(random.Random(key).sample(range(len(ids)), budget))
        return [ids[i] for i in positions]
