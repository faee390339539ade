"""The library entry point: one call loads any compression method, and the object it returns compresses
and answers the same way for every family.

    from compressions import load_compressor

    compressor = load_compressor("extractive", budget=32)      # a text method; "snapkv": a KV-cache method
    compressed = compressor.compress(context, question)        # what the model will read (CompressedContext)
    print(compressor.answer(compressed, question))             # the model reading it, greedy

`load_compressor` takes a method name (`compressions.methods.METHODS`: text and KV-cache methods), a
learned compressor checkpoint folder (`compressions train compressor`: soft tokens or gist K/V), or a gist
model folder (`compressions gist train`), and returns a `Compressor`. `compress` gives a `CompressedContext`
(kept token ids, or soft-token `embeddings`, or a kept KV cache `kv`); `answer` reads it (or compresses a
context first) through `evaluation.reading`, the SQuAD harness's own path; both take lists too.
`generate_inputs` gives what `model.generate` takes to read a compressed context with the user's own
generation settings. For a gist model the context is an instruction and the question its input (Alpaca
layout), and `compress` gives a `gist.cache.GistCache`.

Text and KV methods read the harness's SQuAD prompt (two solved examples, shipped in the package; `prompt=`
takes another `SquadPromptConfig`, `solved_from=` a train split to pick its examples from); a learned
checkpoint, a reader adapter and a gist model fix their own prompt.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from peft import PeftModel
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from compressions.data.prompts import SquadPrompt, SquadPromptConfig, solved_examples
from compressions.data.records import unencodable
from compressions.data.squad import SquadExample
from compressions.errors import ArgumentError, ConfigError, ModelNotFoundError
from compressions.evaluation.context_window import LONG_CONTEXT, fit_window
from compressions.evaluation.reading import first_line, read_compressed
from compressions.methods import METHODS, REQUIRED, build_method, check_method, family_of
from compressions.methods.base import CompressedContext, ContextCompressor, Target, check_budget_fits, compression_requests
from compressions.models import DEFAULT_MODEL, load_model
from compressions.models.generation import kept_cache_inputs
from compressions.models.loading import check_placement, load_tokenizer
from compressions.models.soft_prompts import embed_with_slots, slot_mask
from compressions.reader.adapter import load_reader, reader_prompt
from compressions.store.saved import COMPRESSOR, describe, saved_kind

if TYPE_CHECKING:
    from compressions.gist.compressor import GistCompressor

log = logging.getLogger(__name__)
ANSWER_TOKENS = 32  # room `compress` leaves for an answer in the window: `answer`'s default max_new_tokens
Contexts = str | CompressedContext | Sequence[str | CompressedContext]


@dataclasses.dataclass
class Compressor:
    """A method with the model that reads its output and the prompt around the context."""

    method: ContextCompressor
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    prompt: SquadPromptConfig
    budget: int | None
    shots: list[SquadExample] = dataclasses.field(default_factory=list)  # the prompt's solved examples
    name: str = ""  # the method's name in results: its registry name, or learned-<arch> for a checkpoint
    model_name: str = DEFAULT_MODEL  # what the model was loaded from
    reader: str | None = None  # the reader adapter the model reads with
    decoder: str | None = None  # the learned checkpoint whose decoder (reader merged, its adapter on) reads
    ratio: float | None = None  # instead of a budget: context tokens per kept token, M = round(tokens / ratio)
    long_context: str = "truncate"  # a context past the model's window: cut at its end (and logged), or "refuse"

    @property
    def layout(self) -> SquadPrompt:
        """The prompt around the context slot, as the model reads it."""
        return SquadPrompt(self.tokenizer, self.prompt, tuple(self.shots))

    @functools.cached_property
    def target(self) -> Target:
        """The model and prompt every compression is made for (a KV-cache method reads with them), kept
        with the prompt prefix's cache so that it is read once for all calls."""
        return Target(self.model, self.layout)

    def compress(self, context: str | Sequence[str], question: str | Sequence[str] = "") -> CompressedContext | list[CompressedContext]:
        """What the model reads for each context (the question matters to question-aware methods only); a
        list of contexts (with one question, or a list of as many) gives a list, compressed together."""
        contexts, questions, one = _pairs(context, question, compressed=False)
        compressed = self._compress_many(self._fit(contexts, questions, ANSWER_TOKENS), questions)
        return compressed[0] if one else compressed

    def answer(self, context: Contexts, question: str | Sequence[str], max_new_tokens: int = 32, batch_size: int = 8) -> str | list[str]:
        """The model's greedy answer, its first line, as the harness scores it. A context may already be
        compressed (what `compress` returned: it is read as it is, not compressed again); lists answer together."""
        contexts, questions, one = _pairs(context, question, compressed=True)
        if not all(q.strip() for q in questions):
            raise ArgumentError("question", "is empty: there is nothing to answer")
        contexts = self._fit(contexts, questions, max_new_tokens)
        todo = [i for i, c in enumerate(contexts) if not isinstance(c, CompressedContext)]
        for i, made in zip(todo, self._compress_many([contexts[i] for i in todo], [questions[i] for i in todo])):
            contexts[i] = made
        _, generated = read_compressed(self.model, self.method, contexts, questions, self.layout, max_new_tokens, batch_size)
        answers = [first_line(self.tokenizer.decode(g, skip_special_tokens=True)) for g in generated]
        return answers[0] if one else answers

    def generate_inputs(self, compressed: CompressedContext, question: str) -> dict[str, torch.Tensor | DynamicCache]:
        """The keyword arguments of `self.model.generate` that read `compressed` in the prompt for `question`:
        `input_ids` and `attention_mask`; for a kept KV cache also `cache` (a transformers `DynamicCache`
        holding the prompt up to the end of the context) and `position_ids` (the question continues at the
        position it has after the whole context); for soft tokens `inputs_embeds` instead of `input_ids`.
        Generate inside `compressor.method.reading()` (a learned decoder's adapters), one call per result."""
        if not isinstance(compressed, CompressedContext):
            raise ArgumentError("compressed", f"takes what compress() returned, got {type(compressed).__name__}")
        _pairs(compressed, question, compressed=True)
        prefix, suffix = self.layout.ids(question)
        prompt = prefix + compressed.token_ids + suffix
        if compressed.kv is not None:
            return kept_cache_inputs(self.model, [compressed.kv], [prompt], self.tokenizer.pad_token_id)
        ids = torch.tensor([prompt], device=self.model.device)
        mask = torch.ones_like(ids)
        if compressed.embeddings is None:
            return {"input_ids": ids, "attention_mask": mask}
        in_slot = slot_mask([len(prompt)], [(len(prefix), len(compressed.embeddings))], len(prompt))
        return {"inputs_embeds": embed_with_slots(self.model, ids, in_slot, compressed.embeddings), "attention_mask": mask}

    def _fit(self, contexts: list, questions: list[str], answer_tokens: int) -> list:
        """The harness's policy for a text context longer than the model's window (with the prompt and
        `answer_tokens`): cut at its end and counted, or refused with long_context="refuse"; read past its
        positions, a model answers without a warning (evaluation.context_window)."""
        texts = [i for i, c in enumerate(contexts) if isinstance(c, str)]
        examples = [SquadExample(str(i), "", contexts[i], questions[i], [], []) for i in texts]
        fitted, cut = fit_window(examples, self.layout, self.model.config, answer_tokens, self.long_context)
        if cut:
            log.warning("%d context(s) cut at the end to the model's window (long_context=refuse refuses them)", cut)
        contexts = list(contexts)
        for i, example in zip(texts, fitted):
            contexts[i] = example.context
        return contexts

    def _compress_many(self, contexts: list[str], questions: list[str]) -> list[CompressedContext]:
        """One `compress_many` per budget (with `ratio`, each context's budget follows its length); a
        question-agnostic method compresses each distinct context once for all its questions."""
        requests, place = compression_requests(self.method, contexts, questions)
        budgets = [self._budget(context) for context, _ in requests]
        made: list[CompressedContext | None] = [None] * len(requests)
        for budget in dict.fromkeys(budgets):
            rows = [i for i, b in enumerate(budgets) if b == budget]
            batch = self.method.compress_many([requests[i][0] for i in rows], [requests[i][1] for i in rows], budget, target=self.target)
            for i, compressed in zip(rows, batch):
                made[i] = compressed
        return [made[i] for i in place]

    def _budget(self, context: str) -> int | None:
        if self.ratio is None:
            return self.budget
        return max(1, round(len(self.tokenizer(context, add_special_tokens=False).input_ids) / self.ratio))


def _pairs(context, question, compressed: bool) -> tuple[list, list[str], bool]:
    """(contexts, questions, whether one was given): a single context, or a list with one question for
    all or a list of as many; each checked, so a wrong type is one clear error, not one from deep inside."""
    one = isinstance(context, (str, CompressedContext))
    contexts = [context] if one else list(context) if isinstance(context, Sequence) else None
    kinds = (str, CompressedContext) if compressed else (str,)
    if contexts is None or not all(isinstance(c, kinds) for c in contexts):
        allowed = "a string or what compress() returned" if compressed else "a string"
        raise ArgumentError("context", f"takes {allowed}, or a list of them; got {type(context).__name__}")
    if any(isinstance(c, str) and not c.strip() for c in contexts):
        raise ArgumentError("context", "is empty: nothing to compress")
    if any(isinstance(c, str) and unencodable(c) for c in contexts):
        raise ArgumentError("context", "holds a lone surrogate or a NUL, which no tokenizer reads")
    questions = [question] * len(contexts) if isinstance(question, str) else list(question) if isinstance(question, Sequence) else None
    if questions is None or not all(isinstance(q, str) for q in questions):
        raise ArgumentError("question", f"takes a string, or a list of them; got {type(question).__name__}")
    if any(unencodable(q) for q in questions):
        raise ArgumentError("question", "holds a lone surrogate or a NUL, which no tokenizer reads")
    if len(questions) != len(contexts):
        raise ArgumentError("question", f"{len(questions)} questions for {len(contexts)} contexts: give one, or one per context")
    return contexts, questions, one


def load_compressor(
    name_or_path: str,
    budget: int | None = None,
    model: str | PreTrainedModel | None = None,
    reader: str | None = None,
    prompt: SquadPromptConfig | None = None,
    device: str = "cpu",
    *,
    ratio: float | None = None,
    dtype: str = "float32",
    llm: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    solved_from: Sequence[SquadExample] = (),
    decoder: str | None = None,
    long_context: str = "truncate",
    **options,
) -> Compressor | GistCompressor:
    """Any method by name or saved folder; `options` are the method's own (e.g. `ranker="embedding"`).

    `budget` keeps M tokens (or KV entries per layer and head) of every context; `ratio` instead keeps one
    per `ratio` context tokens (ratio=4: a quarter; kvpress's compression_ratio=0.75 is ratio=4). `model` is
    a name (alias, local dir, Hub id) or a loaded model (its tokenizer is loaded from where it came from
    unless `tokenizer=` is given; `llm=` is the same). For text and KV methods: a model already wearing a
    reader's adapter keeps it, `solved_from` (a train split) picks the prompt's solved examples instead of
    the shipped ones, and `decoder` (a learned checkpoint trained with a decoder adapter) makes that
    checkpoint's decoder the reader, so that text rows are read as the learned row beside them. A learned
    checkpoint or a gist model loads its own model. A context longer than the model's window is cut at its
    end (logged), as the harness does, or refused with `long_context="refuse"`."""
    check_placement(dtype, device)
    if long_context not in LONG_CONTEXT:
        raise ArgumentError("long_context", f"is one of {', '.join(LONG_CONTEXT)}, got {long_context!r}")
    if isinstance(model, (PreTrainedModel, PeftModel)):
        llm, model = model, None
    if llm is not None and tokenizer is None:
        tokenizer = _own_tokenizer(llm)
    name, options = _registry_name(name_or_path, options)
    if ratio is not None:
        if budget is not None:
            raise ArgumentError("ratio", "give a budget or a ratio, not both")
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio < 1:
            raise ArgumentError("ratio", f"is context tokens per kept token, a number >= 1 (ratio=4 keeps a quarter); got {ratio!r}")
        if name in METHODS and METHODS[name].budget != REQUIRED:
            raise ArgumentError("ratio", f"method {name!r} keeps everything, nothing or what it was trained for, and takes no ratio")
    checked = budget if ratio is None else 1  # a ratio gives each context its own budget when it compresses
    entry = check_method(name, checked)
    if entry.folder:  # it loads its own model from its folder, which fixes the model, budget and reader
        given = {"model": model, **options}  # a gist model's folder is its `model`
        folder = given.pop(entry.folder, None)
        if folder is None:
            raise ArgumentError(entry.folder, f"method {name!r} loads a saved {entry.kind}: pass {entry.folder}=DIR")
        loaded = entry.load().from_saved(folder, device, model=given.get("model"), budget=budget, reader=reader)
        return dataclasses.replace(saved_compressor(loaded), long_context=long_context) if isinstance(loaded, ContextCompressor) else loaded
    if decoder:
        llm, tokenizer, model, reader, prompt = _learned_decoder(decoder, model, reader, device)
    if llm is None:
        llm, tokenizer = load_model(model or DEFAULT_MODEL, dtype, device)
    model = model or _own_name(llm)
    prompt = prompt or SquadPromptConfig()
    if reader:
        llm = llm if isinstance(llm, PeftModel) else load_reader(llm, reader)
        trained = reader_prompt(reader)  # a reader learned its answer format from the prompt it was trained on
        if trained is not None and trained != dataclasses.asdict(prompt):
            log.info("reading with the reader's training prompt %s", trained)
            prompt = SquadPromptConfig(**trained)
    shots = solved_examples(prompt.shots, solved_from)
    check_budget_fits(budget, llm.config)
    method = build_method(name, tokenizer, checked, target_model=llm, **options)
    return Compressor(method, llm, tokenizer, prompt, budget, shots, name, model, reader, decoder, ratio, long_context)


def _registry_name(name_or_path: str, options: dict) -> tuple[str, dict]:
    """(registry name, options): a saved folder stands for the family that loads its kind, with the folder
    as that family's option."""
    kind = saved_kind(name_or_path)
    if kind is None:
        if Path(name_or_path).exists():
            raise ConfigError(f"{name_or_path} is {describe(name_or_path)}: neither a compressor checkpoint nor a gist model folder")
        return name_or_path, options
    family = family_of(kind)
    if family is None:
        raise ConfigError(f"{name_or_path} is a {kind}: no method loads it (a compressor checkpoint or a gist model does)")
    return family, {**options, METHODS[family].folder: name_or_path}


def saved_compressor(method: ContextCompressor) -> Compressor:
    """A method that brought its own reader (a learned checkpoint, or a pipeline just trained), with it."""
    fixed = method.saved_reader
    return Compressor(method, fixed.model, fixed.tokenizer, fixed.prompt, fixed.budget, list(fixed.shots), method.name, fixed.model_name, fixed.reader)


def _own_name(llm: PreTrainedModel) -> str:
    return llm.config.name_or_path or DEFAULT_MODEL


def _own_tokenizer(llm: PreTrainedModel) -> PreTrainedTokenizerBase:
    """The tokenizer saved where `llm` was loaded from, or one error line asking for it."""
    name = llm.config.name_or_path
    try:
        if name:
            return load_tokenizer(name)
    except ModelNotFoundError:
        pass
    raise ArgumentError("tokenizer", f"no tokenizer found where the model came from ({name or 'unknown'}): pass tokenizer=")


def _learned_decoder(path: str, model: str | None, reader: str | None, device: str):
    """(llm, tokenizer, model name, reader, prompt) of a checkpoint's decoder: its LLM with the reader merged
    and its own decoder adapter on, and the prompt it was trained with."""
    entry = METHODS[family_of(COMPRESSOR)]
    method = entry.load().from_saved(path, device, model=model, reader=reader)
    if not method.trains_decoder:
        raise ConfigError(f"{path} was trained for a frozen decoder: read text with its reader ({method.saved_reader.reader}), not decoder=")
    fixed = method.saved_reader
    return fixed.model, fixed.tokenizer, fixed.model_name, fixed.reader, fixed.prompt
