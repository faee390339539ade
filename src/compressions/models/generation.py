"""Batched greedy generation from token-id prompts, stopping at a newline or EOS."""

from __future__ import annotations

from functools import lru_cache

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.models.soft_prompts import embed_with_slots, slot_mask


@lru_cache(maxsize=8)
def _newline_token_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return tuple(i for i, piece in enumerate(pieces) if "\n" in piece)


def stop_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, stop_at_newline: bool = True) -> list[int]:
    """EOS ids of the model and tokenizer, plus every token that contains a newline."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    if stop_at_newline:
        ids |= set(_newline_token_ids(tokenizer))
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
) -> list[list[int]]:
    """New token ids for each prompt, in input order. Prompts are batched by length to limit padding.

    `soft[i] = (start, embeddings [M, d])` replaces prompt i's positions start..start+M-1 by those
    vectors (the model then reads inputs_embeds); `None` keeps a prompt's tokens.
    """
    stops = stop_token_ids(model, tokenizer, stop_at_newline)
    outputs: list[list[int]] = [[] for _ in prompts]
    device = model.device
    bar = tqdm(total=len(prompts), desc="generate", unit="ex", disable=not progress)
    for rows in length_batches([len(p) for p in prompts], batch_size):
        ids, mask = left_pad([prompts[i] for i in rows], tokenizer.pad_token_id)
        inputs = {"input_ids": ids.to(device)}
        if soft is not None and any(soft[i] is not None for i in rows):
            slots = [None if soft[i] is None else (soft[i][0], len(soft[i][1])) for i in rows]
            vectors = torch.cat([soft[i][1] for i in rows if soft[i] is not None]).to(device)
            in_slot = slot_mask([len(prompts[i]) for i in rows], slots, ids.shape[1])
            inputs = {"inputs_embeds": embed_with_slots(model, inputs["input_ids"], in_slot, vectors)}
        out = model.generate(
            **inputs,
            attention_mask=mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )
        new = out[:, ids.shape[1] :] if "input_ids" in inputs else out  # from embeddings: new tokens only
        for row, seq in zip(rows, new.tolist()):
            outputs[row] = until_stop(seq, set(stops))
        bar.update(len(rows))
    bar.close()
    return outputs


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped by length (less padding), each group at most batch_size."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def until_stop(tokens: list[int], stops: set[int]) -> list[int]:
    """Tokens up to and including the first stop token (the rest is padding)."""
    for i, t in enumerate(tokens):
        if t in stops:
            return tokens[: i + 1]
    return tokens
