"""Prompts whose slot holds soft embeddings instead of tokens: token ids with placeholder ids in the
slot, left-padded, embedded by the model, then the slot rows overwritten with the soft vectors.

Training and generation build their inputs with the same two functions, so they see the same layout.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

Slot = tuple[int, int]  # (start, length) in the unpadded prompt


def slot_mask(lengths: list[int], slots: list[Slot | None], width: int) -> torch.Tensor:
    """(B, width) True where a left-padded prompt holds its slot."""
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for row, (length, slot) in enumerate(zip(lengths, slots)):
        if slot is not None:
            begin = width - length + slot[0]
            mask[row, begin : begin + slot[1]] = True
    return mask


def embed_with_slots(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """(B, T, d) input embeddings of `ids` with the slot positions replaced, in row order, by `soft`
    (any shape whose leading dims flatten to mask.sum() vectors, e.g. (B, M, d))."""
    embeds = model.get_input_embeddings()(ids)
    return embeds.masked_scatter(mask.to(embeds.device)[..., None], soft.to(embeds.dtype))
