"""`perplexity`: drop the least informative words until the context fits the budget.

Inspired by Selective Context (Li et al., 2023): the self-information of a token is -log p(token |
what precedes it) under a small causal LM, a unit's is the sum over its tokens, and the least
informative units are dropped. Differences from the paper: units are whitespace-delimited words
(`unit=word`) or single target tokens (`unit=token`) instead of spaCy noun phrases and sentences,
and instead of a percentile threshold we keep the most informative units that fit M target
tokens exactly. The question is not used, as in the paper.

The scoring LM may have its own tokenizer: its tokens are mapped to units by character offsets.
"""

from __future__ import annotations

import bisect
import re

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.base import BudgetedCompressor
from compressions.methods.language_model import TARGET, adapters_off, compressor_model

UNITS = ("word", "token")


class SelfInformation(BudgetedCompressor):
    name = "perplexity"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        target_model: PreTrainedModel | None = None,
        model: str = TARGET,
        unit: str = "word",
        dtype: str = "float32",
        device: str = "cpu",
    ):
        super().__init__(tokenizer)
        if unit not in UNITS:
            raise CompressionsError(f"unknown unit {unit!r}; choose one of {', '.join(UNITS)}")
        self.unit = unit
        self.lm, self.lm_tokenizer = compressor_model(model, self.name, target_model, tokenizer, dtype, device)

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        spans, pieces = self._units(context)
        information = self._unit_information(context, spans)
        order = sorted(range(len(spans)), key=lambda i: (-information[i], i))
        kept, room = set(), budget
        for i in order:  # most informative first; skip a unit that no longer fits, try smaller ones
            if len(pieces[i]) <= room:
                kept.add(i)
                room -= len(pieces[i])
        return [t for i in sorted(kept) for t in pieces[i]]

    def _units(self, context: str) -> tuple[list[tuple[int, int]], list[list[int]]]:
        """Character spans of the units and their target token ids."""
        if self.unit == "token":
            encoded = self.tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
            return [tuple(o) for o in encoded.offset_mapping], [[t] for t in encoded.input_ids]
        spans = [m.span() for m in re.finditer(r"\s*\S+", context)]  # a word with its leading space
        return spans, [self.tokenizer(context[a:b], add_special_tokens=False).input_ids for a, b in spans]

    @torch.no_grad()
    def _unit_information(self, context: str, spans: list[tuple[int, int]]) -> list[float]:
        encoded = self.lm_tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
        start = self.lm_tokenizer.bos_token_id
        start = self.lm_tokenizer.eos_token_id if start is None else start  # conditions the first token
        ids = torch.tensor([[start, *encoded.input_ids]], device=self.lm.device)  # (1, T+1)
        with adapters_off(self.lm):
            logits = self.lm(input_ids=ids).logits[0, :-1].float()  # (T, V): row t predicts token t
        information = -logits.log_softmax(-1).gather(1, ids[0, 1:, None])[:, 0]  # (T,) nats
        totals = [0.0] * len(spans)
        starts = [a for a, _ in spans]
        for (a, _), value in zip(encoded.offset_mapping, information.tolist()):
            totals[max(0, bisect.bisect_right(starts, a) - 1)] += value
        return totals
