"""The interface every text-level context compressor implements.

Given a context, its question and a budget of M target-model tokens, a method returns what the
target model will read in place of the context. Token counts are always in the target tokenizer.
KV-cache methods return the reader's kept cache entries (`kv`) with one placeholder id per kept entry.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from transformers import PreTrainedTokenizerBase

from compressions.errors import ArgumentError, CompressionsError
from compressions.progress import tqdm

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from compressions.data.prompts import SquadPrompt, SquadPromptConfig
    from compressions.models.kept_cache import KeptCache


@dataclass(frozen=True)
class CompressedContext:
    token_ids: list[int]  # what the target model reads, in its own tokenizer
    text: str
    seconds: float = 0.0  # time spent compressing
    # soft methods: (K, d) vectors the model reads in place of the first K token_ids (placeholders)
    embeddings: torch.Tensor | None = None
    # KV-cache methods: the cache the reader holds for the prompt up to the end of the slot (token_ids: one per kept entry)
    kv: KeptCache | None = None

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


@dataclass
class Target:
    """The model that will read a method's output and the prompt around the context slot, given to every
    method when it compresses: a KV-cache method reads the prompt up to the end of the context with that
    model, and keeps the prompt prefix's cache here, read once for all the contexts this target reads."""

    model: PreTrainedModel
    prompt: SquadPrompt
    prefixes: dict[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] = field(default_factory=dict)

    def prefix_cache(self, ids: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The model's per-layer (keys, values) of these prompt-prefix ids, read the first time and kept."""
        from compressions.models.generation import prefill  # the model runs only when a KV method asks

        key = tuple(ids)
        if key not in self.prefixes:
            self.prefixes[key] = prefill(self.model, ids)
        return self.prefixes[key]


@dataclass(frozen=True)
class SavedReader:
    """What a method loaded from a saved folder fixes: the model that reads its output (its own decoder),
    with its tokenizer, the prompt it was trained with, its budget, and the names it was loaded from."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    prompt: SquadPromptConfig
    budget: int
    model_name: str
    reader: str | None
    shots: tuple = ()  # the prompt's solved examples it was trained with (SquadExample)


class ContextCompressor:
    """What every context method is: `compress` one context; `compress_many` is the harness's entry point;
    `reading()` is the context in which the target model reads what it made (e.g. an encoder-only adapter off).
    `target` is the model and prompt that will read the result (text methods need neither)."""

    name: str
    question_aware: bool = False  # whether what is kept depends on the question (results tables split on it)
    # what it makes: "text" (kept token ids only: the harness may store and reuse them), "soft" or "kv"
    output: str = "text"

    # a method loaded from a saved folder reads with the model it was trained for (None: the caller chooses)
    saved_reader: SavedReader | None = None

    def reading(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def compress(self, context: str, question: str, budget: int | None, target: Target | None = None) -> CompressedContext:
        raise NotImplementedError

    def compress_many(
        self, contexts: list[str], questions: list[str], budget: int | None, progress: bool = False, target: Target | None = None
    ) -> list[CompressedContext]:
        """One result per (context, question), in order. One at a time here; a method that batches overrides it."""
        pairs = tqdm(zip(contexts, questions, strict=True), total=len(contexts), desc="compress", unit="ex", disable=not progress)
        return [self.compress(context, question, budget, target) for context, question in pairs]


def compression_requests(method: ContextCompressor, contexts: list[str], questions: list[str]) -> tuple[list[tuple[str, str]], list[int]]:
    """The (context, question) pairs `method` has to compress, and for each given pair the index of its result.
    A question-agnostic method compresses each distinct context once, without a question, and every question
    about it reads that one result (a document compressed once, answered many times); a question-aware
    method compresses each distinct pair."""
    keys = [(c, q) if method.question_aware else (c, "") for c, q in zip(contexts, questions, strict=True)]
    distinct = list(dict.fromkeys(keys))
    place = {key: i for i, key in enumerate(distinct)}
    return distinct, [place[key] for key in keys]


def check_budget(budget: int | None, required: bool = True) -> None:
    if budget is None:
        if required:
            raise ArgumentError("budget", "this method needs a token budget, an integer M >= 1")
        return
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ArgumentError("budget", f"must be an integer >= 1, got {budget!r}")


def check_budget_fits(budget: int | None, model_config) -> None:
    """A budget the reading model can hold at all: more than its positions would keep every context whole
    (and a learned compressor would grow that many slots)."""
    window = getattr(model_config, "max_position_embeddings", None)
    if budget is not None and window is not None and budget > window:
        raise ArgumentError("budget", f"{budget} is more than the model's {window} positions")


def check_context(context: str) -> None:
    if not context or not context.strip():
        raise CompressionsError("empty context: nothing to compress")


def require(module: str, method: str, extra: str):
    """Import an optional dependency, or fail naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CompressionsError(
            f"method {method!r} needs the optional package {module!r}: pip install 'compressions[{extra}]'"
        ) from None


class BudgetedCompressor(ContextCompressor):
    """Shared frame of the budgeted methods: checks, a clock, and contexts that already fit kept whole.

    Subclasses implement `select(context, question, budget, ids) -> kept ids` for a context longer
    than the budget, or `select_many` to handle all of them at once (batching); every result goes
    through `result`, which checks it against the budget, so no method can overshoot.
    """

    name = "budgeted"

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.tokenizer = tokenizer

    def compress(self, context: str, question: str, budget: int | None, target: Target | None = None) -> CompressedContext:
        return self.compress_many([context], [question], budget)[0]

    def compress_many(
        self, contexts: list[str], questions: list[str], budget: int | None, progress: bool = False, target: Target | None = None
    ) -> list[CompressedContext]:
        """Each result's `seconds` is its share of `select_many`, plus an equal share of the rest."""
        for context, _ in zip(contexts, questions, strict=True):  # one question per context
            check_context(context)
        check_budget(budget)
        if not contexts:
            return []
        start = time.perf_counter()
        kept = [self.tokenizer(c, add_special_tokens=False).input_ids for c in contexts]
        long = [i for i, ids in enumerate(kept) if len(ids) > budget]
        seconds = [0.0] * len(contexts)
        selected = self.select_many([contexts[i] for i in long], [questions[i] for i in long], budget, [kept[i] for i in long], progress)
        for i, (ids, spent) in zip(long, selected, strict=True):
            kept[i], seconds[i] = ids, spent
        rest = (time.perf_counter() - start - sum(seconds)) / len(contexts)  # checks and tokenising
        return [self.result(ids, budget, s + rest) for ids, s in zip(kept, seconds, strict=True)]

    def select_many(
        self, contexts: list[str], questions: list[str], budget: int, ids: list[list[int]], progress: bool = False
    ) -> list[tuple[list[int], float]]:
        """(kept ids, seconds) for each context longer than the budget; one `select` at a time here."""
        out = []
        for context, question, context_ids in tqdm(
            zip(contexts, questions, ids), total=len(contexts), desc="compress", unit="ex", disable=not progress
        ):
            start = time.perf_counter()
            out.append((self.select(context, question, budget, context_ids), time.perf_counter() - start))
        return out

    def result(self, kept: list[int], budget: int, seconds: float) -> CompressedContext:
        if len(kept) > budget:
            raise AssertionError(f"{self.name} kept {len(kept)} tokens for a budget of {budget}")
        return CompressedContext(kept, self.tokenizer.decode(kept), seconds)

    def select(self, context: str, question: str, budget: int, ids: list[int]) -> list[int]:
        raise NotImplementedError
