"""Long inputs built from SQuAD, so that every method can be read at 1K-4K tokens on a small CPU.

- `distractor_documents` (RULER's QA construction, Hsieh et al. 2024): each question's own paragraph among
  distractor paragraphs, first the other paragraphs of its article, then those of the other articles, added
  while the whole stays within N tokens, then shuffled with a seed; the answer moves with its paragraph.
- `needle_examples`: a needle in a haystack: "The special magic number for <key> is <value>." hidden at a
  seeded depth (between two sentences) in SQuAD text of about N tokens; the question asks for the value, which
  only exact recall answers.
Both are deterministic for a seed, and every answer stands at its offset.
"""

from __future__ import annotations

import dataclasses
import random

from transformers import PreTrainedTokenizerBase

from compressions.data.documents import SEPARATOR, paragraphs_of
from compressions.data.squad import SquadExample


def distractor_documents(
    examples: list[SquadExample], tokenizer: PreTrainedTokenizerBase, target_tokens: int, seed: int = 0, limit: int | None = None
) -> list[SquadExample]:
    """Every question (the first `limit`), its context its own paragraph shuffled among distractors from all
    of `examples` to at most `target_tokens` (its own paragraph alone if that is already longer)."""
    paragraphs = [group[0] for group in paragraphs_of(examples)]
    lengths = {p.context: len(tokenizer(p.context, add_special_tokens=False).input_ids) for p in paragraphs}
    separator = len(tokenizer(SEPARATOR, add_special_tokens=False).input_ids)
    out = []
    for index, example in enumerate(examples[:limit]):
        same = [p.context for p in paragraphs if p.article == example.article and p.context != example.context]
        other = [p.context for p in paragraphs if p.article != example.article]
        chosen, used = [example.context], lengths[example.context]
        for context in same + other:
            if used + separator + lengths[context] > target_tokens:
                break
            chosen.append(context)
            used += separator + lengths[context]
        random.Random(f"{seed}-{index}").shuffle(chosen)
        # where its own paragraph now starts
        offset = sum(len(p) + len(SEPARATOR) for p in chosen[: chosen.index(example.context)])
        starts = [s + offset for s in example.answer_starts]
        out.append(dataclasses.replace(example, context=SEPARATOR.join(chosen), answer_starts=starts))
    return out


def needle_examples(
    examples: list[SquadExample], tokenizer: PreTrainedTokenizerBase, target_tokens: int, n: int, seed: int = 0
) -> list[SquadExample]:
    """n needle questions, each in its own haystack of consecutive SQuAD paragraphs (from a seeded start)
    cut at a sentence to about `target_tokens` with the needle inside."""
    paragraphs = [group[0].context for group in paragraphs_of(examples)]
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key = "".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou") for _ in range(4))
        value = str(rng.randint(1_000_000, 9_999_999))
        needle = f"The special magic number for {key} is {value}."
        sentences, used = [], len(tokenizer(needle, add_special_tokens=False).input_ids)
        start = rng.randrange(len(paragraphs))
        for paragraph in paragraphs[start:] + paragraphs[:start]:
            for sentence in paragraph.split(". "):
                sentence = sentence if sentence.endswith(".") else sentence + "."
                cost = len(tokenizer(" " + sentence, add_special_tokens=False).input_ids)
                if used + cost > target_tokens:
                    break
                sentences.append(sentence)
                used += cost
            else:
                continue
            break
        sentences.insert(rng.randint(0, len(sentences)), needle)  # the depth: before sentence k of the haystack
        context = " ".join(sentences)
        out.append(
            SquadExample(
                id=f"needle-{target_tokens}-{seed}-{i}", title="needle", context=context,
                question=f"What is the special magic number for {key}?", answers=[value],
                answer_starts=[context.index(needle) + needle.index(value)], article=-1,
            )
        )  # fmt: skip
    return out
