"""`snapkv`: keep the context's KV entries the question attends to most, per layer and KV head.

Inspired by SnapKV (Li et al., 2024, "SnapKV: LLM Knows What You are Looking for Before Generation"): the
queries of an observation window at the end of the prompt vote for the entries they attend to; the votes,
summed over the window and smoothed by average pooling over neighbouring positions (`kernel`, so a kept
entry brings its neighbours along), pick M entries per layer and head. Differences: the window is the
prompt text after the context (question and answer anchor) rather than a fixed number of last tokens; the
model has grouped-query attention, so a KV head's votes are summed over the query heads that read it (as
in kvpress's SnapKVPress); and the window's own entries are not kept: the question is read again after
the kept entries, at its original positions, as every method here reads it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerBase

from compressions.errors import CompressionsError
from compressions.methods.kv_cache import KVCompressor


class SnapKV(KVCompressor):
    name = "snapkv"
    question_aware = True

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        share_prefix: bool = True,
        kernel: int = 7,
    ):
        super().__init__(tokenizer, share_prefix)
        if kernel < 1 or kernel % 2 == 0:
            raise CompressionsError(f"snapkv kernel must be odd and >= 1 (pooling keeps the length), got {kernel}")
        self.kernel = kernel

    def split(self, ids: list[int], after: list[int]) -> tuple[list[int], list[int]]:
        if not after:
            raise CompressionsError("snapkv needs prompt text after the context (the question) as its observation window")
        return ids, after

    def scores(self, keys: torch.Tensor, attention: torch.Tensor | None) -> torch.Tensor:
        layers, n_kv, n = keys.shape[:3]
        votes = attention.reshape(layers, n_kv, -1, attention.shape[2], n).sum(dim=(2, 3))  # (L, n_kv, C)
        return F.avg_pool1d(votes, self.kernel, stride=1, padding=self.kernel // 2)
