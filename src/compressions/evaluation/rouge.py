"""ROUGE-1/2/L with rouge-score and stemming, as the Gist paper scored (F-measure, x100)."""

from __future__ import annotations

from functools import cache

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@cache
def _scorer():
    """Built on first use, not at import: building it logs through the root logger, which configures
    logging for the whole process before the CLI can (INFO lines without -v)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def rouge_scores(prediction: str, reference: str) -> dict[str, float]:
    """Per-example F-measures in [0, 1]."""
    scores = _scorer().score(reference, prediction)  # rouge-score takes (target, prediction)
    return {k: scores[k].fmeasure for k in ROUGE_TYPES}


def aggregate_rouge(per_example: list[dict[str, float]]) -> dict[str, float]:
    n = len(per_example)
    return {k: (100.0 * sum(s[k] for s in per_example) / n if n else 0.0) for k in ROUGE_TYPES}
