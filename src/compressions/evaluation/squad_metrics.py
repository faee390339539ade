"""SQuAD v1.1 exact match and F1, with the official evaluation script's normalisation.

Per example: the max over reference answers. Aggregates are means x 100, as the official script reports.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lowercase, drop punctuation, drop the articles a/an/the, fold whitespace (official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def f1(prediction: str, reference: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    ref_tokens = normalize_answer(reference).split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(prediction: str, references: list[str]) -> dict[str, float]:
    """Per-example scores in [0, 1]: max over the references."""
    return {
        "exact_match": max(exact_match(prediction, r) for r in references),
        "f1": max(f1(prediction, r) for r in references),
    }


def aggregate_squad(per_example: list[dict[str, float]]) -> dict[str, float]:
    """Means x 100 (the official script's scale)."""
    n = len(per_example)
    if n == 0:
        return {"exact_match": 0.0, "f1": 0.0}
    return {k: 100.0 * sum(s[k] for s in per_example) / n for k in ("exact_match", "f1")}
