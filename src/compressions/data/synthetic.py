"""Synthetic data, so core tests need no files: fictional-entity passages with span-answer
questions (SQuAD-shaped) and templated instructions with inputs (Alpaca-shaped).

Everything is a pure function of the seed.
"""

from __future__ import annotations

import dataclasses
import random
import re

from compressions.data.alpaca import AlpacaExample
from compressions.data.squad import SquadExample

_SYLLABLES = ["ka", "lo", "mir", "ven", "tas", "dor", "eli", "quon", "bra", "sel", "un", "tor", "vi", "ra"]
_JOBS = ["baker", "pilot", "painter", "engineer", "farmer", "sailor", "teacher", "doctor"]
_COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "silver", "black"]
_ANIMALS = ["fox", "owl", "horse", "cat", "whale", "wolf", "crow", "goat"]
_WORDS = ["river", "stone", "lamp", "garden", "window", "bridge", "cloud", "market", "letter", "song"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def synthetic_squad(n: int, seed: int = 0) -> list[SquadExample]:
    """n questions about fictional people; every answer is a span of its context."""
    rng = random.Random(seed)
    examples = []
    for i in range(n):
        person, city = _name(rng), _name(rng)
        facts = {
            "job": rng.choice(_JOBS),
            "city": city,
            "year": str(rng.randint(1700, 1999)),
            "color": rng.choice(_COLORS),
            "animal": rng.choice(_ANIMALS),
        }
        sentences = [
            f"{person} was a {facts['job']} who lived in the town of {city}.",
            f"{person} was born in {facts['year']}.",
            f"The favourite colour of {person} was {facts['color']}.",
            f"{person} kept a {facts['animal']} as a pet.",
        ]
        rng.shuffle(sentences)
        context = " ".join(sentences)
        key = rng.choice(sorted(facts))
        question = {
            "job": f"What was the job of {person}?",
            "city": f"In which town did {person} live?",
            "year": f"In which year was {person} born?",
            "color": f"What was the favourite colour of {person}?",
            "animal": f"Which animal did {person} keep as a pet?",
        }[key]
        answer = facts[key]
        examples.append(
            SquadExample(
                id=f"synthetic-{seed}-{i}",
                title=person,
                context=context,
                question=question,
                answers=[answer],
                answer_starts=[context.index(answer)],
            )
        )
    return examples


def synthetic_job_questions(n: int = 8) -> list[SquadExample]:
    """n contexts with distinct jobs and one fixed question: the answer can only come from the context."""
    examples, seen = [], set()
    for e in synthetic_squad(200, seed=1):
        job = re.search(r"was a (\w+) who", e.context).group(1)
        if job not in seen:
            seen.add(job)
            examples.append(dataclasses.replace(e, question="What was the job?", answers=[job], answer_starts=[e.context.index(job)]))
    return examples[:n]


def synthetic_alpaca(n: int, seed: int = 0) -> list[AlpacaExample]:
    """n instruction/input/output triples whose output is a deterministic function of the input."""
    rng = random.Random(seed)
    tasks = [
        ("Repeat the input.", lambda ws: " ".join(ws)),
        ("Reverse the order of the words.", lambda ws: " ".join(reversed(ws))),
        ("Write the first word of the input.", lambda ws: ws[0]),
        ("Write the last word of the input.", lambda ws: ws[-1]),
        ("Write the input in capital letters.", lambda ws: " ".join(ws).upper()),
    ]
    examples = []
    for _ in range(n):
        instruction, fn = rng.choice(tasks)
        words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 5))]
        examples.append(AlpacaExample(instruction, " ".join(words), fn(words), "synthetic"))
    return examples


def synthetic_corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Text that covers the synthetic data and the prompt templates (trains the tiny tokenizer)."""
    texts = [f"{e.context}\n{e.question}\n{e.answers[0]}" for e in synthetic_squad(n, seed)]
    texts += [f"Instruction: {e.instruction}\nInput: {e.input}\nOutput: {e.output}" for e in synthetic_alpaca(n, seed)]
    texts.append("Context: Question: Answer: Answer the question using the context. system user assistant")
    return texts
