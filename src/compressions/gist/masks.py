"""Attention masks for gist training, as pure functions of a padded batch.

Three conditions (Mu et al., section 3 and the authors' code):
- `gist`: causal; tokens after the last gist cannot see anything before the first gist.
- `pos_control`: plain causal (gists present, nothing hidden): the instruction stays visible.
- `neg_control`: causal; tokens after the last gist see neither the instruction nor the gists.

Masks are `[B, 1, T, T]`, query by key, for left or right padding: `attention_mask` (2D, 1 = real
token) says which tokens are padding, so a pad id equal to EOS is fine. A padded query attends only to
itself: a row with nothing to attend to makes sdpa return NaN, which would then leak through the
values into real rows (0 x NaN). Bool masks (True = attend) suit sdpa; eager needs the additive float
mask (a bool mask is silently added as 0/1 there).
"""

from __future__ import annotations

import torch

CONDITIONS = ("gist", "pos_control", "neg_control")


def gist_regions(input_ids: torch.Tensor, gist_id: int, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(before_first_gist, after_last_gist), both [B, T] bool over real tokens; all False without gists."""
    is_gist = (input_ids == gist_id) & attention_mask.bool()
    seen = is_gist.long().cumsum(-1)  # gists at or before each token
    total = seen[:, -1:]
    real = attention_mask.bool()
    has_gist = total > 0
    before_first = real & (seen == 0) & has_gist
    after_last = real & (seen == total) & ~is_gist & has_gist
    return before_first, after_last


def gist_mask(
    input_ids: torch.Tensor, gist_id: int, attention_mask: torch.Tensor, condition: str = "gist"
) -> torch.Tensor:
    """Bool `[B, 1, T, T]` mask (True = may attend) for one of CONDITIONS."""
    if condition not in CONDITIONS:
        raise ValueError(f"condition must be one of {CONDITIONS}, got {condition!r}")
    if input_ids.shape != attention_mask.shape or input_ids.dim() != 2:
        raise ValueError(f"input_ids {tuple(input_ids.shape)} and attention_mask {tuple(attention_mask.shape)} must be the same [B, T]")
    T = input_ids.shape[1]
    real = attention_mask.bool()
    causal = torch.ones(T, T, dtype=torch.bool, device=input_ids.device).tril()
    allowed = causal[None] & real[:, None, :]  # (B, T, T): query i, key j
    before_first, after_last = gist_regions(input_ids, gist_id, attention_mask)
    if condition == "gist":
        allowed &= ~(after_last[:, :, None] & before_first[:, None, :])
    elif condition == "neg_control":
        allowed &= ~after_last[:, :, None] | after_last[:, None, :]
    eye = torch.eye(T, dtype=torch.bool, device=input_ids.device)
    allowed = torch.where(real[:, :, None], allowed, eye[None])  # padded queries see themselves only
    return allowed[:, None]  # (B, 1, T, T)


def additive_mask(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Bool mask -> float mask: 0 where attending, the dtype's lowest value elsewhere (eager attention)."""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def float_mask_dtype(model) -> torch.dtype | None:
    """The dtype of the additive mask the model needs (eager attention), or None when bool suits it."""
    return model.dtype if model.config._attn_implementation == "eager" else None


def mask_for(model, mask: torch.Tensor) -> torch.Tensor:
    """The bool mask as the model's attention implementation needs it (additive float for eager)."""
    dtype = float_mask_dtype(model)
    return mask if dtype is None else additive_mask(mask, dtype)
