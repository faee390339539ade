"""Every context method by name, in one registry: the text and KV-cache methods of this package, and the
families that live above this layer and are named here by where they are (imported only when used): a
learned compressor checkpoint (`learned`, option `checkpoint`) and a gist model (`gist`, option `model`).

Adding a method is one file holding its class (a `ContextCompressor`) and one line in METHODS.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from dataclasses import dataclass

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.errors import ArgumentError, CompressionsError
from compressions.methods.abstractive import Abstractive
from compressions.methods.base import CompressedContext, ContextCompressor, Target, check_budget
from compressions.methods.bounds import FullContext, NoContext
from compressions.methods.expected_attention import ExpectedAttention
from compressions.methods.extractive import Extractive
from compressions.methods.knorm import KeyNorm
from compressions.methods.kv_cache import KVCompressor
from compressions.methods.kvzip import KVzip
from compressions.methods.llmlingua_adapter import LLMLingua
from compressions.methods.perplexity import SelfInformation
from compressions.methods.prefix import Prefix
from compressions.methods.random_tokens import RandomTokens
from compressions.methods.snapkv import SnapKV
from compressions.methods.streaming import StreamingLLM
from compressions.methods.suffix import Suffix
from compressions.methods.tova import TOVA
from compressions.store.saved import COMPRESSOR, GIST_MODEL

REQUIRED, NO_BUDGET, SAVED = "required", "none", "saved"  # what a method does with a budget


@dataclass(frozen=True)
class Entry:
    target: type | functools.partial | str  # the class, or "module:Class" for a family above this layer
    budget: str = REQUIRED  # REQUIRED; NO_BUDGET: keeps everything or nothing; SAVED: its saved folder fixes it
    folder: str | None = None  # the option that names the saved folder a SAVED family loads
    kind: str | None = None  # what that folder is (store.saved's kinds)

    def load(self) -> type | functools.partial:
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


METHODS = {
    "full": Entry(FullContext, NO_BUDGET),
    "none": Entry(NoContext, NO_BUDGET),
    "prefix": Entry(Prefix),
    "suffix": Entry(Suffix),
    "random": Entry(RandomTokens),
    "extractive": Entry(Extractive),  # TF-IDF ranker unless ranker=embedding
    "extractive-embedding": Entry(functools.partial(Extractive, ranker="embedding")),
    "abstractive": Entry(Abstractive),
    "perplexity": Entry(SelfInformation),
    "llmlingua": Entry(LLMLingua),
    # KV-cache methods: M entries of the reader's own cache per layer and KV head
    "streaming": Entry(StreamingLLM),
    "knorm": Entry(KeyNorm),
    "snapkv": Entry(SnapKV),
    "tova": Entry(TOVA),
    "kvzip": Entry(KVzip),
    "expected_attention": Entry(ExpectedAttention),
    # a learned KV selection (option checkpoint: a `train selector` folder), above this layer
    "selector": Entry("compressions.compressors.selector:AnswerSelector"),
    # trained families, each loaded from the folder its trainer saved
    "learned": Entry("compressions.compressors.method:LearnedContext", SAVED, "checkpoint", COMPRESSOR),
    "gist": Entry("compressions.gist.compressor:GistCompressor", SAVED, "model", GIST_MODEL),
}
INJECTED = ("tokenizer", "target_model")  # given by the caller, not options


def check_method(name: str, budget: int | None) -> Entry:
    """The method's registry entry, once its budget is what it takes: the one place a budget is checked
    against a method (a SAVED family also checks it against its folder when it loads)."""
    if name not in METHODS:
        raise ArgumentError("method", f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    entry = METHODS[name]
    if entry.budget == NO_BUDGET and budget is not None:  # it would be ignored, and the row labelled with a budget it never had
        raise ArgumentError("budget", f"method {name!r} keeps everything or nothing and takes no budget (got {budget})")
    check_budget(budget, required=entry.budget == REQUIRED)
    return entry


def takes_budget(name: str) -> bool:
    """Whether the method keeps a budget M the caller chooses (not the bounds, not a saved family)."""
    return name in METHODS and METHODS[name].budget == REQUIRED


def family_of(kind: str) -> str | None:
    """The registry name of the family whose saved folders are of this kind."""
    return next((name for name, entry in METHODS.items() if entry.kind == kind), None)


def method_options(name: str) -> list[str]:
    """The options a method takes (`--method-option key=value`); a saved family's is its folder."""
    entry = METHODS[name]
    if entry.folder:
        return [entry.folder]
    return [p for p in inspect.signature(entry.load()).parameters if p not in INJECTED]


def build_method(
    name: str, tokenizer: PreTrainedTokenizerBase, budget: int | None = None, target_model: PreTrainedModel | None = None, **options
) -> ContextCompressor:
    """The text or KV-cache method `name` with its options; methods that run an LM may reuse `target_model`.
    (A saved family loads from its folder: `compressions.load_compressor`.)"""
    entry = check_method(name, budget)
    if entry.folder:
        raise CompressionsError(f"method {name!r} loads from a saved folder: use compressions.load_compressor")
    unknown = sorted(set(options) - set(method_options(name)))
    if unknown:
        valid = ", ".join(method_options(name)) or "none"
        raise CompressionsError(f"method {name!r} has no option {', '.join(unknown)} (its options: {valid})")
    method = entry.load()
    check_option_types(name, method, options)
    if "target_model" in inspect.signature(method).parameters:
        options["target_model"] = target_model
    return method(tokenizer, **options)


_SIMPLE = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def check_option_types(name: str, method: type, options: dict) -> None:
    """Each option's value against the type its constructor declares (int, float, str, bool, or one of them
    or None): `seed=abc` is one error naming the option, not a string recorded as a seed."""
    hints = typing.get_type_hints(method.__init__)
    for key, value in options.items():
        declared = hints.get(key)
        allowed = set(typing.get_args(declared)) if isinstance(declared, types.UnionType) else {declared}
        if value is None and type(None) in allowed or not allowed <= {*_SIMPLE, type(None)}:
            continue  # None where it is allowed, or a type this check does not know
        fits = any(isinstance(value, t) and not (t in (int, float) and isinstance(value, bool)) for t in allowed - {type(None)})
        fits = fits or (float in allowed and isinstance(value, int) and not isinstance(value, bool))
        if not fits:
            wanted = " or ".join(_SIMPLE[t] for t in allowed if t in _SIMPLE)
            raise ArgumentError(f"method_options.{key}", f"method {name!r} takes {wanted}, got {value!r}")


__all__ = [
    "METHODS", "NO_BUDGET", "REQUIRED", "SAVED", "CompressedContext", "ContextCompressor", "Entry", "KVCompressor", "Target",
    "build_method", "check_method", "check_option_types", "family_of", "method_options", "takes_budget",
]  # fmt: skip
