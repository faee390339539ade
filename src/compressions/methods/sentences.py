"""Sentence splitting that loses nothing: the pieces join back to the exact input text.

A sentence ends at `.`, `!` or `?` (optionally followed by closing quotes or brackets) when
whitespace and then an upper-case letter, a digit or an opening quote follow. Each piece carries
its leading whitespace, so tokenising the pieces apart keeps the spaces the tokenizer folds into tokens.
"""

from __future__ import annotations

import re

# A boundary sits just before the whitespace that follows a sentence end.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    pieces, start = [], 0
    for match in _BOUNDARY.finditer(text):
        end = match.end()
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return [p for p in pieces if p]
