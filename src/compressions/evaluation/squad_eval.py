"""The SQuAD evaluation harness: any context method -> prompts -> batched greedy answers -> EM/F1.

Every method sees the same prompt around the context (data/prompts.py); only the context changes. KV-cache
methods (methods/kv_cache.py) read the prompt up to the end of the context themselves and hand over the
reader's kept cache; generation then reads the rest of the prompt from that cache.
`max_new_tokens` defaults to the answer-length diagnostic on the train split (covers 99% of answers).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from transformers import PreTrainedModel

from compressions.config import check_choice
from compressions.data.documents import DocumentStats, pack_documents
from compressions.data.haystacks import distractor_documents, needle_examples
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.data.records import ON_ERROR
from compressions.data.squad import SquadExample
from compressions.errors import ArgumentError, ConfigError
from compressions.evaluation.answer_lengths import answer_token_lengths, length_report
from compressions.evaluation.compressed_cache import CompressedCache
from compressions.evaluation.context_window import LONG_CONTEXT, fit_window
from compressions.evaluation.efficiency import kv_bytes_per_token
from compressions.evaluation.intervals import bootstrap_ci
from compressions.evaluation.reading import first_line, read_compressed
from compressions.evaluation.squad_metrics import aggregate_squad, normalize_answer, squad_scores
from compressions.methods import METHODS, NO_BUDGET, Entry, check_method
from compressions.methods.base import ContextCompressor, Target, compression_requests
from compressions.models import DEFAULT_MODEL
from compressions.models.loading import check_placement
from compressions.progress import tqdm
from compressions.store.run_folder import RunFolder, git_commit
from compressions.store.saved import COMPRESSOR, checked_settings

log = logging.getLogger(__name__)
LAYOUTS = {"documents": "doc", "distractors": "dist", "needle": "needle"}  # long-input layouts and their run-name tags
COMPRESS_CHUNK = 64  # examples compressed between two writes to a compressed-context cache


class Compressed(Protocol):
    """A method loaded with the model that reads it (`compressions.api.Compressor`)."""

    method: ContextCompressor
    model: PreTrainedModel
    name: str

    @property
    def layout(self) -> SquadPrompt: ...


@dataclass
class SquadEvalConfig:
    model: str | None = field(
        default=None, metadata={"help": f"alias, local dir or hub id (default {DEFAULT_MODEL}; method learned: the checkpoint's)"}
    )
    dtype: str = field(default="float32", metadata={"help": "weights' dtype: float32 | bfloat16 | float16"})
    device: str = field(default="cpu", metadata={"help": "cpu, cuda, cuda:1 ..."})
    data: str = field(default="squad", metadata={"help": "file, short name in the data dir, or hub id"})
    data_dir: str | None = field(default=None, metadata={"help": "default: $COMPRESSIONS_DATA_DIR"})
    split: str = field(default="validation", metadata={"help": "train | validation | all (local: by article)"})
    train_articles: int = field(default=20, metadata={"help": "local files: first N articles are train"})
    limit: int | None = field(default=None, metadata={"help": "first N questions of the split (of its documents, with documents)"})
    documents: int | None = field(
        default=None,
        metadata={"help": "pack consecutive paragraphs of an article into documents of at most N tokens (512: the seeds' lengths)"},
    )
    distractors: int | None = field(
        default=None, metadata={"help": "each question's paragraph among distractor paragraphs, to at most N tokens (RULER's QA)"}
    )
    needle: int | None = field(
        default=None, metadata={"help": "needle-in-a-haystack questions in about N tokens of SQuAD text (limit: how many, default 100)"}
    )
    method: str = field(default="full", metadata={"help": f"a method: {', '.join(METHODS)}"})
    budget: int | None = field(default=None, metadata={"help": "context token budget M"})
    method_options: dict = field(default_factory=dict, metadata={"help": "the method's own options (key: value)"})
    checkpoint: str | None = field(
        default=None, metadata={"help": "the saved folder of a method that loads one (learned: a compressor checkpoint)"}
    )
    reader: str | None = field(default=None, metadata={"help": "reader adapter folder (compressions train reader)"})
    decoder: str | None = field(
        default=None,
        metadata={"help": "a text or KV method read by this learned checkpoint's decoder (one trained with pipeline.use_lora)"},
    )
    compressed_cache: str | None = field(
        default=None, metadata={"help": "folder keeping text methods' compressed contexts, reused by runs that differ only in reader"}
    )
    prompt: SquadPromptConfig = field(default_factory=SquadPromptConfig)
    max_new_tokens: int | None = field(default=None, metadata={"help": "default: answer-length diagnostic"})
    batch_size: int = field(default=8, metadata={"help": "questions answered together"})
    seed: int = 0
    n_samples: int = field(default=20, metadata={"help": "predictions kept in sample_predictions.json"})
    on_error: str = field(default="skip", metadata={"help": "malformed records: skip | raise"})
    long_context: str = field(
        default="truncate",
        metadata={"help": "contexts longer than the model's window with the prompt and answer: truncate (counted in metrics.json) | refuse"},
    )
    out: str | None = field(default=None, metadata={"help": "run folder (default runs/eval/<method>)"})

    def __post_init__(self) -> None:
        if self.model is None and not self._entry.folder:  # a saved folder names its own model
            self.model = DEFAULT_MODEL

    @property
    def _entry(self) -> Entry:
        return METHODS.get(self.method, Entry(None))

    def validate(self) -> None:
        """Fail on bad input before any data or model is loaded."""
        self.prompt.validate()
        check_placement(self.dtype, self.device)
        check_choice("on_error", self.on_error, ON_ERROR)
        check_choice("long_context", self.long_context, LONG_CONTEXT)
        entry = check_method(self.method, self.budget)
        if entry.folder:  # the folder fixes the LLM, M and the reader: one that differs would be ignored, so it is refused
            if not self.checkpoint:
                raise ArgumentError("checkpoint", f"method {self.method!r} needs a {entry.kind} folder")
            checked_settings(self.checkpoint, entry.kind, model=self.model, budget=self.budget, reader=self.reader)
        if self.decoder:
            if entry.folder:
                raise ConfigError(f"decoder: a {entry.kind} reads with its own decoder; give it to text or KV methods")
            checked_settings(self.decoder, COMPRESSOR, model=self.model, reader=self.reader)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        sizes = {name: getattr(self, name) for name in LAYOUTS if getattr(self, name) is not None}
        for name, size in sizes.items():
            if size < 1:
                raise ArgumentError(name, f"is a document size in tokens, >= 1; got {size}")
        if len(sizes) > 1:
            raise ConfigError(f"choose one of documents, distractors and needle, not {' and '.join(sizes)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")

    @property
    def source(self) -> str:
        """What `compressions.load_compressor` loads: a saved folder (it names its family), else the method's name."""
        return self.checkpoint if self._entry.folder else self.method

    @property
    def run_name(self) -> str:
        if self._entry.folder:
            return f"{self.method}-{Path(self.checkpoint).name}"
        name = self.method if self._entry.budget == NO_BUDGET else f"{self.method}-M{self.budget}"
        name += "".join(f"-{LAYOUTS[key]}{getattr(self, key)}" for key in LAYOUTS if getattr(self, key))
        return f"{name}-decoder" if self.decoder else f"{name}-reader" if self.reader else name


def evaluate_compressor(
    run: RunFolder,
    config: SquadEvalConfig,
    compressor: Compressed,
    examples: list[SquadExample],
    train_examples: list[SquadExample] | None,
    progress: bool = True,
) -> dict:
    """Score one loaded method (any family: `compressions.load_compressor` makes it) on the questions and
    write its results into `run`; returns metrics.json's content. `config` is the run's, as resolved
    (the model, budget, prompt and reader the method was loaded with)."""
    model, method, layout = compressor.model, compressor.method, compressor.layout
    tokenizer = layout.tokenizer
    examples, documents = _long_inputs(config, examples, tokenizer, model.config)
    max_new_tokens = config.max_new_tokens
    if max_new_tokens is None:
        lengths = answer_token_lengths((e.answers for e in train_examples), layout)
        max_new_tokens = length_report(lengths)["recommended_max_new_tokens"]
        log.info("max_new_tokens=%d from the answer-length diagnostic on the train split", max_new_tokens)
    examples, truncated = fit_window(examples, layout, model.config, max_new_tokens, config.long_context)

    start = time.perf_counter()
    cache = None
    if config.compressed_cache and method.output != "text":
        log.info("compressed_cache ignored: %s makes %s, not kept token ids", compressor.name, method.output)
    elif config.compressed_cache:
        cache = CompressedCache(config.compressed_cache, _cache_identity(config))
    compressed_all, made, cached_seconds = _compress(method, examples, config.budget, cache, progress, Target(model, layout))
    answering = time.perf_counter()
    distinct = list({id(c): c for c in compressed_all}.values())  # the questions of one context may share it
    kept = [c.n_tokens for c in compressed_all]
    context_lengths = [len(tokenizer(e.context, add_special_tokens=False).input_ids) for e in examples]
    compress_seconds = sum(c.seconds for c in distinct)  # those taken from the cache: as when made
    questions = [e.question for e in examples]
    prompts, generated = read_compressed(
        model, method, compressed_all, questions, layout, max_new_tokens, config.batch_size, progress
    )
    answer_seconds = time.perf_counter() - answering
    seconds = time.perf_counter() - start + cached_seconds

    predictions = [first_line(tokenizer.decode(g, skip_special_tokens=True)) for g in generated]
    scores = [squad_scores(p, e.answers) for p, e in zip(predictions, examples)]
    metrics = _metrics(config, examples, predictions, scores, kept, context_lengths, prompts, seconds, compress_seconds)
    metrics["max_new_tokens"] = max_new_tokens
    if documents is not None:  # the whole split's packing, before `limit` took its first questions
        metrics["documents"] = documents.as_dict()
    metrics["contexts_truncated"] = truncated  # cut to the model's window (context_window.py)
    # a question-agnostic method compresses each context once for all its questions (and a cache keeps them)
    metrics["compressions_made"] = made
    metrics["compressions_reused"] = len(examples) - made
    metrics["compress_seconds_per_compression"] = compress_seconds / len(distinct)
    metrics["answer_seconds_per_question"] = answer_seconds / len(examples)
    # what the reader holds for the context: kept tokens, or KV entries per layer and KV head, in every layer
    metrics["mean_context_kv_bytes"] = kv_bytes_per_token(model.config, model.dtype) * metrics["mean_kept_tokens"]
    metrics["question_aware"] = method.question_aware
    metrics["method"] = compressor.name  # the registry name the run asked for (two names may share a class)
    samples = [
        {
            "id": e.id,
            "prompt": tokenizer.decode(p),
            "prediction": pred,
            "references": e.answers,
            **s,
        }
        for e, p, pred, s in list(zip(examples, prompts, predictions, scores))[: config.n_samples]
    ]
    run.write_json("sample_predictions.json", samples)
    # every question's scores, so that two runs can be compared question by question (`eval compare`)
    run.write_json("scores.json", [{"id": e.id, **s} for e, s in zip(examples, scores)])
    run.write_metrics(metrics)
    log.info("%s: F1 %.1f EM %.1f on %d questions", config.run_name, metrics["f1"], metrics["exact_match"], len(examples))
    return metrics


def _long_inputs(config: SquadEvalConfig, examples: list[SquadExample], tokenizer, model_config) -> tuple[list[SquadExample], DocumentStats | None]:
    """The questions as the config lays them out (documents, distractors or needles; `limit` of them), and the
    documents' packing; a size beyond the model's positions is refused before any work."""
    size = config.documents or config.distractors or config.needle
    window = getattr(model_config, "max_position_embeddings", None)
    if size and window is not None and size > window:
        name = next(key for key in LAYOUTS if getattr(config, key))
        raise ArgumentError(name, f"{size} tokens do not fit the model's {window} positions")
    documents = None
    if config.documents:
        examples, documents = pack_documents(examples, tokenizer, config.documents)
    elif config.distractors:
        examples = distractor_documents(examples, tokenizer, config.distractors, config.seed, config.limit)
    elif config.needle:
        examples = needle_examples(examples, tokenizer, config.needle, config.limit or 100, config.seed)
    return (examples[: config.limit] if config.limit else examples), documents


def _cache_identity(config: SquadEvalConfig) -> dict:
    """What decides a text method's output (the reader does not: compression runs with adapters off)."""
    fields = ("method", "method_options", "budget", "model", "dtype", "device")
    return {name: getattr(config, name) for name in fields} | {"code": git_commit()}


def _compress(method, examples: list[SquadExample], budget: int | None, cache: CompressedCache | None, progress: bool, target: Target):
    """(each example's compressed context, how many compressions this run made, the seconds of those taken
    from the cache). A question-agnostic method compresses each context once, and its questions share the
    result. With a cache, new ones are made in chunks, each stored when done, so a killed run keeps its
    finished chunks."""
    requests, place = compression_requests(method, [e.context for e in examples], [e.question for e in examples])
    if cache is None:
        made = method.compress_many([c for c, _ in requests], [q for _, q in requests], budget, progress=progress, target=target)
        return [made[i] for i in place], len(requests), 0.0
    found = [cache.get(c, q) for c, q in requests]
    cached_seconds = sum(c.seconds for c in found if c is not None)
    todo = [i for i, c in enumerate(found) if c is None]
    for begin in tqdm(range(0, len(todo), COMPRESS_CHUNK), desc="compress", unit="chunk", disable=not progress):
        rows = todo[begin : begin + COMPRESS_CHUNK]
        fresh = method.compress_many([requests[i][0] for i in rows], [requests[i][1] for i in rows], budget, target=target)
        for i, compressed in zip(rows, fresh, strict=True):
            found[i] = compressed
            cache.put(*requests[i], compressed)
    return [found[i] for i in place], len(todo), cached_seconds


def _metrics(config, examples, predictions, scores, kept, context_lengths, prompts, seconds, compress_seconds) -> dict:
    n = len(examples)
    mean_kept = statistics.fmean(kept)
    mean_context = statistics.fmean(context_lengths)
    gold_inside = [
        any(normalize_answer(a) in normalize_answer(p) for a in e.answers) for p, e in zip(predictions, examples)
    ]
    return {
        "method": config.method,
        "budget": config.budget,
        "reader": config.reader,
        "decoder": config.decoder,
        "n": n,
        **aggregate_squad(scores),
        # 95% bootstrap intervals over the questions (x100)
        **{f"{key}_ci95": [100 * x for x in bootstrap_ci([s[key] for s in scores])] for key in ("exact_match", "f1")},
        # share of predictions that contain a reference answer: separates "knows" from "answers tersely"
        "gold_in_prediction": 100.0 * sum(gold_inside) / n,
        "mean_context_tokens": mean_context,
        "mean_kept_tokens": mean_kept,
        "compression_ratio": mean_context / mean_kept if mean_kept else None,
        "mean_prompt_tokens": statistics.fmean(len(p) for p in prompts),
        "seconds_per_example": seconds / n,
        "compress_seconds_per_example": compress_seconds / n,
        "prompt_format": config.prompt.format,
    }
