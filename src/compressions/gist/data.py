"""Alpaca examples as gist training sequences, and the collator that pads them and builds the masks.

Layout (Mu et al.): `Instruction: {instruction}\n<GIST>xK\nInput: {input}\nOutput:`, without the Input
line when the input is empty, followed by the completion ` {output}` + EOS; the loss is on the
completion only. The prompt is cut in two at the gists:
- head: everything up to and including the gists (what `GistCache` compresses; instruction only),
- tail: everything after them (what is read with the gists' KV alone; input only).
The gists are inserted as ids, never parsed from text, so K is exact whatever the tokenizer.

Formats: `plain` (the default, the paper's text as is) or `chat` (the same text as the user turn of the
model's chat template, the completion as the assistant turn; an option for instruct models). With K = 0
there is no gist line at all (`Instruction: ...\nInput: ...\nOutput:`): the base model's prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from compressions.data.alpaca import AlpacaExample
from compressions.gist.masks import additive_mask, gist_mask
from compressions.models.generation import left_pad, position_ids

FORMATS = ("plain", "chat")
IGNORE = -100
_SLOT = "\u2063GIST\u2063"  # invisible separators: never in real text, untouched by templates


def _texts(tokenizer: PreTrainedTokenizerBase, instruction: str, input: str, num_gist: int, fmt: str) -> tuple[str, str]:
    """(text before the gists, text after them)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    before = f"Instruction: {instruction}" + ("\n" if num_gist else "")
    after = f"\nInput: {input}" if input else ""
    if fmt == "plain":
        return before, after + "\nOutput:"
    messages = [{"role": "user", "content": before + _SLOT + after}]
    head, tail = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True).split(_SLOT)
    return head, tail


def prompt_head(
    tokenizer: PreTrainedTokenizerBase, instruction: str, num_gist: int, gist_id: int | None, fmt: str = "plain"
) -> list[int]:
    """Ids up to and including the gists: what `GistCache` compresses."""
    return tokenizer(_texts(tokenizer, instruction, "", num_gist, fmt)[0]).input_ids + [gist_id] * num_gist


def instruction_lengths(tokenizer: PreTrainedTokenizerBase, examples: list[AlpacaExample]) -> list[int]:
    """Tokens of each instruction as the full prompt holds it (plain, no gists): what K gists stand for."""
    return [len(prompt_head(tokenizer, e.instruction, 0, None)) for e in examples]


def prompt_tail(tokenizer: PreTrainedTokenizerBase, input: str, num_gist: int, fmt: str = "plain") -> list[int]:
    """Ids after the gists: the input line and `Output:` (or the end of the chat turn)."""
    return tokenizer(_texts(tokenizer, "", input, num_gist, fmt)[1], add_special_tokens=False).input_ids


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, example: AlpacaExample, num_gist: int, gist_id: int | None, fmt: str = "plain"
) -> list[int]:
    """The whole prompt, head + tail."""
    head = prompt_head(tokenizer, example.instruction, num_gist, gist_id, fmt)
    return head + prompt_tail(tokenizer, example.input, num_gist, fmt)


def completion_ids(tokenizer: PreTrainedTokenizerBase, output: str, fmt: str = "plain") -> list[int]:
    """The answer tokens + EOS; a space after `Output:` in the plain format."""
    text = f" {output}" if fmt == "plain" else output
    return tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]


def training_example(
    tokenizer: PreTrainedTokenizerBase,
    example: AlpacaExample,
    num_gist: int,
    gist_id: int,
    fmt: str = "plain",
    max_length: int = 512,
) -> dict[str, list[int]]:
    """input_ids and labels (-100 on the prompt) for one example, cut on the right to max_length."""
    prompt = prompt_ids(tokenizer, example, num_gist, gist_id, fmt)
    completion = completion_ids(tokenizer, example.output, fmt)
    ids = (prompt + completion)[:max_length]
    labels = ([IGNORE] * len(prompt) + completion)[:max_length]
    return {"input_ids": ids, "labels": labels}


@dataclass
class GistCollator:
    """Left-pads `training_example` dicts (as the authors did) and adds the condition's 4D mask and positions.

    The mask is bool (sdpa) unless `float_mask_dtype` is set: then additive in that dtype (eager attention).
    """

    pad_id: int
    gist_id: int
    condition: str = "gist"
    float_mask_dtype: torch.dtype | None = None

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        ids, mask = left_pad([r["input_ids"] for r in rows], self.pad_id)
        labels, _ = left_pad([r["labels"] for r in rows], IGNORE)
        attention = gist_mask(ids, self.gist_id, mask, self.condition)
        return {
            "input_ids": ids,
            "attention_mask": attention if self.float_mask_dtype is None else additive_mask(attention, self.float_mask_dtype),
            "position_ids": position_ids(mask),
            "labels": labels,
        }
