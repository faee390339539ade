"""How long reference answers are in the target model's tokens, and the `max_new_tokens` that
covers them. (A seed evaluation cut answers at 12 new tokens without knowing it.)"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from compressions.data.prompts import SquadPrompt

COVERAGE = 0.99
# Tokens added to the longest covered answer: the stop token (newline / EOS) must fit too.
STOP_MARGIN = 1


def answer_token_lengths(references: Iterable[list[str]], prompt: SquadPrompt) -> list[int]:
    """Length of the longest reference of each example, tokenised as the model emits it after this prompt
    (the answer rule training uses: `SquadPrompt.answer_ids`, without its EOS)."""
    return [max(len(prompt.answer_ids(r)) - 1 for r in refs) for refs in references]


def length_report(lengths: list[int], threshold: int = 12, coverage: float = COVERAGE) -> dict[str, float]:
    if not lengths:
        raise ValueError("no answers to measure")
    arr = np.asarray(lengths)
    covered = int(np.sort(arr)[max(0, math.ceil(coverage * len(arr)) - 1)])
    return {
        "n": len(arr),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p95": float(np.percentile(arr, 95)),
        "p99": float(np.percentile(arr, 99)),
        "max": int(arr.max()),
        f"share_over_{threshold}": float((arr > threshold).mean()),
        "recommended_max_new_tokens": covered + STOP_MARGIN,
    }
