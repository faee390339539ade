"""Contexts cut to the reader's window, before any method sees them.

A SQuAD context can be longer than the model's positions (max_position_embeddings: 8,192 for SmolLM2,
2,048 for the tiny test model): read past them, a model gives answers from positions it was never trained
on, without a warning. So every context is cut (on a token boundary, at the end) to what fits the window
together with the prompt around it and the answer tokens, and the count is recorded; or the run refuses, as
the config says. Every method gets the same cut context, so the rows of a table stay comparable.
"""

from __future__ import annotations

import dataclasses

from transformers import PretrainedConfig

from compressions.data.prompts import SquadPrompt
from compressions.data.squad import SquadExample
from compressions.errors import DataError

LONG_CONTEXT = ("truncate", "refuse")


def fit_window(
    examples: list[SquadExample],
    prompt: SquadPrompt,
    model_config: PretrainedConfig,
    answer_tokens: int,
    long_context: str = "truncate",
) -> tuple[list[SquadExample], int]:
    """(the examples with contexts that fit, how many were cut); `long_context='refuse'` raises on the first
    that does not fit. A model without max_position_embeddings has no window to fit."""
    window = getattr(model_config, "max_position_embeddings", None)
    if window is None:
        return examples, 0
    fitted, cut = [], 0
    for example in examples:
        prefix, suffix = prompt.ids(example.question)
        room = window - len(prefix) - len(suffix) - answer_tokens
        context = prompt.tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True)
        if len(context.input_ids) <= room:
            fitted.append(example)
            continue
        if long_context == "refuse" or room < 1:
            raise DataError(
                f"question {example.id}: its context has {len(context.input_ids)} tokens, the model's window leaves "
                f"room for {max(room, 0)} ({window} positions, the prompt and {answer_tokens} answer tokens); "
                + ("set long_context=truncate to cut such contexts" if room >= 1 else "shorten the prompt or max_new_tokens")
            )
        fitted.append(dataclasses.replace(example, context=example.context[: context.offset_mapping[room - 1][1]]))
        cut += 1
    return fitted, cut
