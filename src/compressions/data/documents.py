"""SQuAD documents of the length compression is for: consecutive paragraphs of one article packed into
documents of at most N tokens of the target tokenizer (N = 512: the seeds' 16x / 8x / 4x at M = 32 / 64 / 128),
each carrying every question of every paragraph in it, its answers moved to where they now stand.

A paragraph is never cut and articles never mix: a paragraph longer than N becomes a document alone, kept
whole, and is counted (`DocumentStats.oversized`). Splits stay by article, so packing a split's questions
keeps them on their side. A question-agnostic method compresses a document once for all its questions
(the harness groups them by context).
"""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

from compressions.data.squad import SquadExample

SEPARATOR = "\n\n"  # between two paragraphs of a document


@dataclass(frozen=True)
class DocumentStats:
    max_tokens: int  # the document size asked for
    documents: int
    paragraphs: int
    oversized: int  # paragraphs longer than the document size, kept whole as documents of their own
    mean_tokens: float
    mean_questions: float

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def paragraphs_of(examples: list[SquadExample]) -> list[list[SquadExample]]:
    """The questions grouped by paragraph, in file order (consecutive questions on one context)."""
    groups: list[list[SquadExample]] = []
    for example in examples:
        if groups and (groups[-1][0].article, groups[-1][0].context) == (example.article, example.context):
            groups[-1].append(example)
        else:
            groups.append([example])
    return groups


def pack_documents(
    examples: list[SquadExample], tokenizer: PreTrainedTokenizerBase, max_tokens: int = 512
) -> tuple[list[SquadExample], DocumentStats]:
    """Every question, its context now the document holding its paragraph; and what the packing made."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    documents: list[list[list[SquadExample]]] = []  # documents -> paragraphs -> questions
    for paragraph in paragraphs_of(examples):
        current = documents[-1] if documents else None
        if current and current[0][0].article == paragraph[0].article:
            joined = SEPARATOR.join(p[0].context for p in [*current, paragraph])
            if _length(tokenizer, joined) <= max_tokens:
                current.append(paragraph)
                continue
        documents.append([paragraph])
    packed, lengths = [], []
    oversized = 0
    for document in documents:
        text = SEPARATOR.join(p[0].context for p in document)
        lengths.append(_length(tokenizer, text))
        oversized += len(document) == 1 and lengths[-1] > max_tokens
        offset = 0
        for paragraph in document:
            for example in paragraph:
                starts = [s + offset for s in example.answer_starts]
                packed.append(dataclasses.replace(example, context=text, answer_starts=starts))
            offset += len(paragraph[0].context) + len(SEPARATOR)
    stats = DocumentStats(
        max_tokens=max_tokens,
        documents=len(documents),
        paragraphs=sum(len(d) for d in documents),
        oversized=oversized,
        mean_tokens=statistics.fmean(lengths) if lengths else 0.0,
        mean_questions=len(packed) / len(documents) if documents else 0.0,
    )
    return packed, stats


def _length(tokenizer: PreTrainedTokenizerBase, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids)
