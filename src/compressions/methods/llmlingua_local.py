"""LLMLingua's PromptCompressor on a model already in memory, fully offline.

Two things in llmlingua 0.2 get in the way (both seen with 0.2.2 and transformers 5): its constructor asks tiktoken for
the gpt-3.5-turbo encoding (a download) and loads its own copy of the model, and its perplexity
pass passes and slices the KV cache as per-layer (key, value) pairs, which transformers 5 no
longer accepts. The subclass below sets the attributes its constructor would set, with the LM's
own tokenizer standing in for tiktoken (so `target_token` counts the LM's tokens), and the LM goes
behind a thin adapter that converts the cache at the call boundary. No llmlingua or transformers
code is changed.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from llmlingua import PromptCompressor
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase


class TokenCounter:
    """Stands in for the tiktoken encoding: llmlingua only calls `encode` to count tokens."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False).input_ids


class LegacyCacheLM:
    """Calls a causal LM with the cache as (key, value) pairs per layer, in and out."""

    def __init__(self, model: PreTrainedModel):
        self.model = model

    def __call__(self, input_ids: torch.Tensor, attention_mask=None, past_key_values=None, use_cache=True):
        cache = DynamicCache(ddp_cache_data=[tuple(kv) for kv in past_key_values]) if past_key_values else None
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, cache=cache, use_cache=True)
        layers = [(layer.keys, layer.values) for layer in out.cache.layers]
        return SimpleNamespace(logits=out.logits, past_key_values=layers)


class LocalPromptCompressor(PromptCompressor):
    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase):
        # The attributes PromptCompressor.__init__ and .load_model set, without tiktoken or a reload.
        self.model_name = model.name_or_path
        self.use_llmlingua2 = False
        self.retrieval_model = None
        self.retrieval_model_name = None
        self.open_api_config = {}
        self.cache_bos_num = 10
        self.prefix_bos_num = 100
        self.oai_tokenizer = TokenCounter(tokenizer)
        self.tokenizer = tokenizer
        self.model = LegacyCacheLM(model)
        self.device = model.device
        self.context_idxs = []
        self.max_position_embeddings = model.config.max_position_embeddings
