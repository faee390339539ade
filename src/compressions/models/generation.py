"""Batched greedy generation from token-id prompts, stopping at EOS or at the end of the answer's first
line (a newline once some text has been written: a leading blank line does not end an answer).

Prompts that all start with the same tokens (an instruction, few-shot examples) share one prefill of
that prefix: its keys and values are computed once, copied into each batch's cache, and each batch
reads only its tails, laid out `[prefix (cached) | padding | tail]` at their original positions. Prompts whose
first tokens a KV-cache method already holds (`KeptCache`) read only what follows them, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList

from compressions.models.kept_cache import KeptCache, batch_cache
from compressions.models.soft_prompts import embed_with_slots, slot_mask
from compressions.progress import tqdm


@dataclass(frozen=True)
class LineTables:
    """Per vocabulary id: whether its text holds a newline, is only whitespace, or holds a newline after
    some non-whitespace text. An answer is the first line of non-blank text, so a newline ends it only once
    text has begun: a reply that opens with a blank line goes on to its first real line."""

    newline: torch.Tensor  # (V,) bool
    blank: torch.Tensor
    ends_line: torch.Tensor

    def ends(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B,) whether each row's last token ends its answer's first line; `tokens` (B, n), n >= 1."""
        last = tokens[:, -1]
        started = (~self.blank[tokens[:, :-1]]).any(dim=1)
        return self.ends_line[last] | (started & self.newline[last])

    def to(self, device: torch.device) -> LineTables:
        return LineTables(self.newline.to(device), self.blank.to(device), self.ends_line.to(device))


@lru_cache(maxsize=8)
def line_tables(tokenizer: PreTrainedTokenizerBase) -> LineTables:
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return LineTables(
        torch.tensor(["\n" in p for p in pieces]),
        torch.tensor([not p.strip() for p in pieces]),
        torch.tensor(["\n" in p.lstrip() for p in pieces]),
    )


class LineEnd(StoppingCriteria):
    """Stops a row of `generate` at the end of its answer's first line (`LineTables`); the new tokens start at `start`."""

    def __init__(self, tables: LineTables, start: int):
        self.tables, self.start = tables, start

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        return self.tables.ends(input_ids[:, self.start :])


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """EOS ids of the model and tokenizer."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    return sorted(i for i in ids if i is not None)


def left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [B, T], sequences aligned on the right."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] positions counting from 0 at each example's first real token; 0 on padding."""
    mask = attention_mask.long()
    return (mask.cumsum(-1) - 1).clamp(min=0) * mask


@torch.no_grad()
def generate_greedy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    max_new_tokens: int,
    batch_size: int = 8,
    stop_at_newline: bool = True,
    progress: bool = True,
    soft: list[tuple[int, torch.Tensor] | None] | None = None,
    share_prefix: bool = True,
    caches: list[KeptCache] | None = None,
) -> list[list[int]]:
    """New token ids for each prompt, in input order. Prompts are batched by length to limit padding.

    `soft[i] = (start, embeddings [M, d])` replaces prompt i's positions start..start+M-1 by those
    vectors (the model then reads inputs_embeds); `None` keeps a prompt's tokens. `share_prefix`
    prefills the prompts' common first tokens once (token prompts only). `caches[i]` holds the entries of
    prompt i's first `caches[i].length` tokens (KV-cache methods); only the rest is read.
    """
    if soft is not None and caches is not None:
        raise ValueError("soft prompts and kept caches cannot be combined")
    stops = stop_token_ids(model, tokenizer)
    lines = line_tables(tokenizer) if stop_at_newline else None
    outputs: list[list[int]] = [[] for _ in prompts]
    device = model.device
    shared = common_prefix_length(prompts) if share_prefix and soft is None and caches is None and len(prompts) > 1 else 0
    prefix = prefill(model, prompts[0][:shared]) if shared else None
    bar = tqdm(total=len(prompts), desc="generate", unit="ex", disable=not progress)
    for rows in length_batches([len(p) for p in prompts], batch_size):
        tails = [prompts[i][shared:] for i in rows]
        if caches is not None:
            inputs = kept_cache_inputs(model, [caches[i] for i in rows], [prompts[i] for i in rows], tokenizer.pad_token_id)
            ids, mask = inputs["input_ids"], inputs.pop("attention_mask")
        elif prefix is not None:  # generate skips the cached ids and reads the rest
            head = torch.tensor(prompts[rows[0]][:shared]).expand(len(rows), shared)
            ids, mask, positions = cached_head_inputs(head, tails, tokenizer.pad_token_id, torch.full((len(rows),), shared))
            inputs = {
                "input_ids": ids.to(device),
                "position_ids": positions.to(device),
                "cache": copy_cache(model, prefix, len(rows)),
            }
        else:
            ids, mask = left_pad(tails, tokenizer.pad_token_id)
            inputs = {"input_ids": ids.to(device)}
        if soft is not None and any(soft[i] is not None for i in rows):  # never with a shared prefix
            slots = [None if soft[i] is None else (soft[i][0], len(soft[i][1])) for i in rows]
            vectors = torch.cat([soft[i][1] for i in rows if soft[i] is not None]).to(device)
            in_slot = slot_mask([len(prompts[i]) for i in rows], slots, ids.shape[1])
            inputs = {"inputs_embeds": embed_with_slots(model, inputs["input_ids"], in_slot, vectors)}
        start = ids.shape[1] if "input_ids" in inputs else 0  # from embeddings, generate returns new tokens only
        out = model.generate(
            **inputs,
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=StoppingCriteriaList([LineEnd(lines.to(device), start)]) if lines else None,
        )
        for row, seq in zip(rows, out[:, start:].tolist()):
            outputs[row] = until_stop(seq, set(stops), lines)
        bar.update(len(rows))
    bar.close()
    return outputs


def cached_head_inputs(
    head: torch.Tensor,
    tails: list[list[int]],
    pad_id: int,
    first_positions: torch.Tensor,
    head_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask, position_ids), each (N, H + T), laid out `[head | padding | tail]` for
    a cache that already holds the head (N, H) (generate reads only what follows it); tail i starts at
    position first_positions[i]. `head_mask` (N, H) marks padding inside the cached head (default: none)."""
    tail_ids, tail_mask = left_pad(tails, pad_id)
    head_mask = torch.ones_like(head) if head_mask is None else head_mask
    ids = torch.cat([head, tail_ids], dim=1)
    mask = torch.cat([head_mask, tail_mask], dim=1)
    positions = (position_ids(mask) + (first_positions - head_mask.sum(1))[:, None]) * mask
    return ids, mask, positions


def kept_cache_inputs(
    model: PreTrainedModel, caches: list[KeptCache], prompts: list[list[int]], pad_id: int
) -> dict[str, torch.Tensor | DynamicCache]:
    """`generate` arguments for prompts whose first `caches[i].length` tokens are in `caches[i]`: a fresh
    cache of the rows (padded), and the rest of each prompt at the positions it has after the whole context."""
    tails = [prompt[c.length :] for prompt, c in zip(prompts, caches, strict=True)]
    if not all(tails):
        raise ValueError("a prompt must go on after its kept cache (the question is read after the context)")
    cache, head_mask = batch_cache(model, caches)
    head = torch.full(head_mask.shape, pad_id)  # stands for the cached entries: generate skips these ids
    first = torch.tensor([c.next_position for c in caches])
    ids, mask, positions = cached_head_inputs(head, tails, pad_id, first, head_mask)
    inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": positions}
    return {key: value.to(model.device) for key, value in inputs.items()} | {"cache": cache}


def common_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token to read."""
    shortest = min(len(p) for p in prompts)
    n = 0
    while n < shortest - 1 and all(p[n] == prompts[0][n] for p in prompts):
        n += 1
    return n


@torch.no_grad()
def prefill(model: PreTrainedModel, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer (keys, values), each [1, heads, len(ids), head_dim], of one unpadded prompt."""
    cache = model(input_ids=torch.tensor([ids], device=model.device), use_cache=True).cache
    return [(layer.keys, layer.values) for layer in cache.layers]


def copy_cache(model: PreTrainedModel, kv: list[tuple[torch.Tensor, torch.Tensor]], rows: int) -> DynamicCache:
    """A fresh cache holding `kv` for each of `rows` rows (a forward appends to the cache it is given)."""
    cache = DynamicCache(config=model.config)
    for layer, (keys, values) in enumerate(kv):
        cache.update(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1), layer)
    return cache


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by length (less padding), each group at most batch_size."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def until_stop(tokens: list[int], stops: set[int], lines: LineTables | None = None) -> list[int]:
    """Tokens up to and including the first stop token, or with `lines` the token that ends the answer's
    first line (the rest is padding)."""
    for i, t in enumerate(tokens):
        if t in stops or (lines is not None and bool(lines.ends(torch.tensor([tokens[: i + 1]])))):
            return tokens[: i + 1]
    return tokens
