"""How the target model reads what a method made, for the SQuAD harness and the library API alike: the
prompt around the context slot, the method's output in the slot (kept token ids; soft tokens in place of
their placeholders; or a kept KV cache that holds the prompt up to the end of the slot), then greedy
answers, inside the method's `reading()` context (e.g. an encoder-only adapter switched off)."""

from __future__ import annotations

from transformers import PreTrainedModel

from compressions.data.prompts import SquadPrompt
from compressions.methods.base import CompressedContext, ContextCompressor
from compressions.models.generation import generate_greedy


def read_compressed(
    model: PreTrainedModel,
    method: ContextCompressor,
    compressed: list[CompressedContext],
    questions: list[str],
    prompt: SquadPrompt,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    progress: bool = False,
) -> tuple[list[list[int]], list[list[int]]]:
    """(prompt ids, new token ids) for each (compressed context, question), in order."""
    prompts, soft = [], []
    for question, kept in zip(questions, compressed, strict=True):
        prefix, suffix = prompt.ids(question)
        prompts.append(prefix + kept.token_ids + suffix)
        soft.append(None if kept.embeddings is None else (len(prefix), kept.embeddings))  # soft tokens fill the slot
    soft = soft if any(s is not None for s in soft) else None
    caches = [kept.kv for kept in compressed]
    caches = caches if any(c is not None for c in caches) else None
    with method.reading():
        generated = generate_greedy(model, prompt.tokenizer, prompts, max_new_tokens, batch_size, progress=progress, soft=soft, caches=caches)
    return prompts, generated


def first_line(text: str) -> str:
    """The answer in a generation: its first line once leading whitespace is dropped."""
    return text.strip().split("\n", 1)[0].strip()
