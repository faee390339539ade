"""Context compressors, by name: text methods and KV-cache methods (kv_cache.py). Each module holds one
method; this dict joins them."""

from __future__ import annotations

import functools
import inspect

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.baselines.abstractive import Abstractive
from compressions.baselines.base import CompressedContext, ContextCompressor, check_budget
from compressions.baselines.bounds import FullContext, NoContext
from compressions.baselines.extractive import Extractive
from compressions.baselines.knorm import KeyNorm
from compressions.baselines.kv_cache import KVCompressor
from compressions.baselines.llmlingua_adapter import LLMLingua
from compressions.baselines.perplexity import SelfInformation
from compressions.baselines.prefix import Prefix
from compressions.baselines.random_tokens import RandomTokens
from compressions.baselines.snapkv import SnapKV
from compressions.baselines.streaming import StreamingLLM
from compressions.baselines.suffix import Suffix
from compressions.baselines.tova import TOVA
from compressions.data.prompts import SquadPrompt
from compressions.errors import ArgumentError, CompressionsError

METHODS = {
    "full": FullContext,
    "none": NoContext,
    "prefix": Prefix,
    "suffix": Suffix,
    "random": RandomTokens,
    "extractive": Extractive,  # TF-IDF ranker unless ranker=embedding
    "extractive-embedding": functools.partial(Extractive, ranker="embedding"),
    "abstractive": Abstractive,
    "perplexity": SelfInformation,
    "llmlingua": LLMLingua,
    # KV-cache methods: M entries of the reader's own cache per layer and KV head
    "streaming": StreamingLLM,
    "knorm": KeyNorm,
    "snapkv": SnapKV,
    "tova": TOVA,
}
UNBUDGETED = {"full", "none"}  # the bounds ignore the budget
INJECTED = ("tokenizer", "target_model", "slot_prompt")  # given by the harness, not options


def check_method(name: str, budget: int | None) -> None:
    if name not in METHODS:
        raise ArgumentError("method", f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    if name in UNBUDGETED and budget is not None:  # it would be ignored, and the row labelled with a budget it never had
        raise ArgumentError("budget", f"method {name!r} keeps everything or nothing and takes no budget (got {budget})")
    check_budget(budget, required=name not in UNBUDGETED)


def method_options(name: str) -> list[str]:
    """The options a method takes (`--method-option key=value`)."""
    parameters = inspect.signature(METHODS[name]).parameters
    return [p for p in parameters if p not in INJECTED]


def build_method(
    name: str,
    tokenizer: PreTrainedTokenizerBase,
    budget: int | None = None,
    target_model: PreTrainedModel | None = None,
    slot_prompt: SquadPrompt | None = None,
    **options,
) -> ContextCompressor:
    """The method `name` with its options; methods that run an LM may reuse `target_model`, and methods whose
    output depends on the prompt around the context (KV-cache methods) get `slot_prompt`."""
    check_method(name, budget)
    unknown = sorted(set(options) - set(method_options(name)))
    if unknown:
        valid = ", ".join(method_options(name)) or "none"
        raise CompressionsError(f"method {name!r} has no option {', '.join(unknown)} (its options: {valid})")
    method = METHODS[name]
    parameters = inspect.signature(method).parameters
    if "target_model" in parameters:
        options["target_model"] = target_model
    if "slot_prompt" in parameters:
        options["slot_prompt"] = slot_prompt
    return method(tokenizer, **options)


__all__ = [
    "METHODS", "UNBUDGETED", "CompressedContext", "ContextCompressor", "KVCompressor", "build_method", "check_method",
    "method_options",
]  # fmt: skip
