"""One prefill forward of a batch of prompts, the three ways the Gist authors benchmarked (they found gist
caching about as fast as caching the whole instruction: its gain is the KV it stores, not time):

- `full_prefill`: the whole prompt `Instruction: ...\\nInput: ...\\nOutput:`, nothing cached (no gists: the
  prompt a model without gisting reads);
- `gist_prefill`: only the post-instruction tokens, on top of the gists' KV (`GistCache`);
- `instruction_prefill`: the same post-instruction tokens on top of the whole instruction's KV (ordinary
  prompt caching).
The post-instruction tokens are the same ids in all three (`prompt_tail` does not depend on K). Each
`Prefill` can be called many times: after every forward it crops its cache back to the cached prefix.
`Prefill.generate` decodes a fixed number of tokens from any of them, the same way for all three.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from compressions.data.alpaca import AlpacaExample
from compressions.gist.cache import GistCache, tail_inputs
from compressions.gist.data import prompt_head, prompt_ids, prompt_tail
from compressions.gist.tokens import gist_token_id
from compressions.models.generation import left_pad, position_ids


@dataclass
class Prefill:
    """The arguments of one forward; `cached_tokens[i]`: KV entries stored for prompt i before it."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, cached + T)
    position_ids: torch.Tensor  # (B, T)
    cache: DynamicCache
    cached_tokens: list[int]

    @torch.no_grad()
    def __call__(self, model: PreTrainedModel) -> torch.Tensor:
        """Logits (B, T, V) of the forward, which fills the cache as a prefill for decoding does."""
        logits = model(
            input_ids=self.input_ids,
            attention_mask=self.attention_mask,
            position_ids=self.position_ids,
            cache=self.cache,
            use_cache=True,
        ).logits
        self.cache.crop(-self.input_ids.shape[1])  # a forward appends to its cache: back to the prefix
        return logits

    @torch.no_grad()
    def generate(self, model: PreTrainedModel, new_tokens: int, pad_id: int) -> torch.Tensor:
        """Exactly `new_tokens` greedy tokens (B, new_tokens) after the prompt: the same decoding for every path."""
        cached = self.attention_mask.shape[1] - self.input_ids.shape[1]
        batch = self.input_ids.shape[0]
        # [cached (skipped by generate) | tail]; generate continues the positions itself.
        ids = torch.cat([self.input_ids.new_full((batch, cached), pad_id), self.input_ids], dim=1)
        positions = torch.cat([self.position_ids.new_zeros((batch, cached)), self.position_ids], dim=1)
        out = model.generate(
            input_ids=ids,
            attention_mask=self.attention_mask,
            position_ids=positions,
            cache=self.cache,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=pad_id,
        )
        self.cache.crop(cached - self.cache.get_seq_length())  # back to the prefix
        return out[:, ids.shape[1] :]


def full_prefill(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[AlpacaExample], fmt: str = "plain"
) -> Prefill:
    ids, mask = left_pad([prompt_ids(tokenizer, e, 0, None, fmt) for e in examples], tokenizer.pad_token_id)
    device = model.device
    cache = DynamicCache(config=model.config)
    return Prefill(ids.to(device), mask.to(device), position_ids(mask).to(device), cache, [0] * len(examples))


def gist_prefill(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, cache: GistCache, inputs: list[str]
) -> Prefill:
    """The tails of `inputs[i]` on top of row i of `cache` (see `GistCache.select`)."""
    tails = [prompt_tail(tokenizer, text, cache.num_gist, cache.prompt_format) for text in inputs]
    ids, mask, positions = tail_inputs(cache, tails, tokenizer.pad_token_id, gist_token_id(tokenizer))
    device, kept = model.device, cache.kept
    return Prefill(
        ids[:, kept:].to(device), mask.to(device), positions[:, kept:].to(device), cache.dynamic_cache(model),
        [kept] * cache.size,
    )  # fmt: skip


@torch.no_grad()
def instruction_prefill(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[AlpacaExample], fmt: str = "plain"
) -> Prefill:
    """Prefills the instructions (left-padded) once; the tails then read their whole KV."""
    device = model.device
    heads = [prompt_head(tokenizer, e.instruction, 0, None, fmt) for e in examples]
    head_ids, head_mask = left_pad(heads, tokenizer.pad_token_id)
    cache = DynamicCache(config=model.config)
    model(
        input_ids=head_ids.to(device),
        attention_mask=head_mask.to(device),
        position_ids=position_ids(head_mask).to(device),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,  # as `compress`: only the KV is wanted
    )
    tail_ids, tail_mask = left_pad([prompt_tail(tokenizer, e.input, 0, fmt) for e in examples], tokenizer.pad_token_id)
    positions = (position_ids(tail_mask) + head_mask.sum(1, keepdim=True)) * tail_mask  # after each instruction
    mask = torch.cat([head_mask, tail_mask], dim=1)  # (B, P + T)
    return Prefill(tail_ids.to(device), mask.to(device), positions.to(device), cache, [len(h) for h in heads])
