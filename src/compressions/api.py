"""The library entry point: one call loads any compression method, and the object it returns compresses
and answers the same way for every family.

    from compressions import load_compressor

    compressor = load_compressor("extractive", budget=32)      # a text method; "snapkv": a KV-cache method
    compressed = compressor.compress(context, question)        # what the model will read (CompressedContext)
    print(compressor.answer(context, question))                # the model reading it, greedy

`load_compressor` takes a method name (`compressions.baselines.METHODS`: text and KV-cache methods), a
learned compressor checkpoint folder (`compressions train compressor`: soft tokens or gist K/V), or a gist
model folder (`compressions gist train`), and returns a `Compressor`. `compress` gives a `CompressedContext`
(kept token ids, or soft-token `embeddings`, or a kept KV cache `kv`); `answer` reads it through
`evaluation.reading`, the SQuAD harness's own path. For a gist model the context is an instruction and the
question its input (Alpaca layout), and `compress` gives a `gist.cache.GistCache`.

Text and KV methods read the harness's zero-shot SQuAD prompt (`prompt=` takes another `SquadPromptConfig`);
a learned checkpoint, a reader adapter and a gist model fix their own prompt.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.baselines import UNBUDGETED, build_method, check_method
from compressions.baselines.base import CompressedContext, ContextCompressor
from compressions.compressors.method import LearnedContext
from compressions.data.prompts import SquadPromptConfig, squad_prompt
from compressions.errors import ConfigError
from compressions.evaluation.reading import read_compressed
from compressions.evaluation.squad_eval import first_line
from compressions.gist.cache import GistCache, compress, generate
from compressions.gist.evaluate import gist_settings, model_dir
from compressions.models import DEFAULT_MODEL, load_model
from compressions.reader.adapter import load_reader, reader_prompt


@dataclasses.dataclass
class Compressor:
    """A method with the model that reads its output and the prompt around the context."""

    method: ContextCompressor
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    prompt: SquadPromptConfig
    budget: int | None

    def compress(self, context: str, question: str = "") -> CompressedContext:
        """What the model reads for this context (the question matters to question-aware methods only)."""
        return self.method.compress_many([context], [question], self.budget)[0]

    def answer(self, context: str, question: str, max_new_tokens: int = 32) -> str:
        compressed = self.compress(context, question)
        _, generated = read_compressed(self.model, self.tokenizer, self.method, [compressed], [question], self.prompt, max_new_tokens=max_new_tokens)
        return first_line(self.tokenizer.decode(generated[0], skip_special_tokens=True))


@dataclasses.dataclass
class GistCompressor:
    """A gist model (Mu et al. 2023): an instruction becomes the K/V of its gist tokens."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    settings: dict  # the gist_config.json saved beside the model

    def compress(self, context: str, question: str = "") -> GistCache:
        return compress(self.model, self.tokenizer, [context], self.settings["num_gist"], self.settings["prompt_format"])

    def answer(self, context: str, question: str, max_new_tokens: int = 128) -> str:
        generated = generate(self.model, self.tokenizer, self.compress(context), [question], max_new_tokens)
        return self.tokenizer.decode(generated[0], skip_special_tokens=True).strip()


def load_compressor(
    name_or_path: str,
    budget: int | None = None,
    model: str | None = None,
    reader: str | None = None,
    prompt: SquadPromptConfig | None = None,
    device: str = "cpu",
    **options,
) -> Compressor | GistCompressor:
    """Any method by name or saved folder; `options` are the method's own (e.g. `ranker="embedding"`)."""
    path = Path(name_or_path)
    if (path / "compressor_config.json").is_file():
        return _learned(path, budget, model, reader, device)
    settings = gist_settings(name_or_path) if path.is_dir() else None
    if settings is not None:
        if settings["condition"] != "gist":
            raise ConfigError(f"{name_or_path} is a {settings['condition']} model: only a gist model compresses")
        llm, tokenizer = load_model(model_dir(name_or_path), device=device)
        return GistCompressor(llm, tokenizer, settings)
    if path.exists():
        raise ConfigError(f"{name_or_path} is neither a compressor checkpoint nor a gist model folder")
    check_method(name_or_path, budget)
    if name_or_path in UNBUDGETED and budget is not None:
        raise ConfigError(f"method {name_or_path!r} keeps everything or nothing: it takes no budget")
    llm, tokenizer = load_model(model or DEFAULT_MODEL, device=device)
    prompt = prompt or SquadPromptConfig(shots=0)  # solved examples need a train split the API does not have
    if reader:
        llm = load_reader(llm, reader)
        prompt = SquadPromptConfig(**(reader_prompt(reader) or dataclasses.asdict(prompt)))
    slot_prompt = functools.partial(squad_prompt, tokenizer, config=prompt)
    method = build_method(name_or_path, tokenizer, budget, target_model=llm, slot_prompt=slot_prompt, **options)
    return Compressor(method, llm, tokenizer, prompt, budget)


def _learned(path: Path, budget: int | None, model: str | None, reader: str | None, device: str) -> Compressor:
    method = LearnedContext.from_checkpoint(path, device)
    trained = method.pipeline.config
    given = {"budget": budget, "model": model, "reader": reader}
    for key, value in given.items():
        if value is not None and value != getattr(trained, key):
            raise ConfigError(f"checkpoint {path} was trained with {key}={getattr(trained, key)!r}, not {value!r}")
    return Compressor(method, method.pipeline.llm, method.pipeline.tokenizer, trained.prompt, trained.budget)
