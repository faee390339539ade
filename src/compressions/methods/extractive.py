"""`extractive`: keep the sentences most relevant to the question, in their original order.

Sentences are ranked by a relevance score (rankers.py); the best are taken whole while they fit the
budget, and the first one that does not fit is cut to fill what is left. Each sentence is tokenised
on its own (with its leading space), so the kept ids add up exactly to the budget or less.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.base import BudgetedCompressor
from compressions.methods.rankers import BUNDLED, RANKERS
from compressions.methods.sentences import split_sentences


class Extractive(BudgetedCompressor):
    name = "extractive"
    question_aware = True

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        ranker: str = "tfidf",
        embedding_model: str = BUNDLED,
        device: str = "cpu",
    ):
        super().__init__(tokenizer)
        if ranker not in RANKERS:
            raise CompressionsError(f"unknown ranker {ranker!r}; choose one of {', '.join(RANKERS)}")
        options = {"model": embedding_model, "device": device} if ranker == "embedding" else {}
        self.ranker = RANKERS[ranker](self.name, **options)

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        sentences = split_sentences(context)
        pieces = [self.tokenizer(s, add_special_tokens=False).input_ids for s in sentences]
        scores = self.ranker.scores(question, [s.strip() for s in sentences])
        # best first; ties go to the earlier sentence
        order = sorted(range(len(sentences)), key=lambda i: (-float(scores[i]), i))
        kept: dict[int, list[int]] = {}
        room = budget
        for i in order:
            kept[i] = pieces[i][:room]
            room -= len(kept[i])
            if room == 0:
                break
        return [t for i in sorted(kept) for t in kept[i]]

