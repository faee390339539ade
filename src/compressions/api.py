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
import logging
from collections.abc import Sequence
from pathlib import Path

from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.baselines import UNBUDGETED, build_method, check_method
from compressions.baselines.base import CompressedContext, ContextCompressor
from compressions.compressors.method import LearnedContext
from compressions.compressors.pipeline import SoftPromptModel
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.data.squad import SquadExample
from compressions.errors import ConfigError
from compressions.evaluation.reading import first_line, read_compressed
from compressions.evaluation.squad_eval import pick_shots
from compressions.experiments.saved import checked_compressor_settings
from compressions.gist.cache import GistCache, compress, generate
from compressions.gist.evaluate import gist_settings, model_dir
from compressions.models import DEFAULT_MODEL, load_model
from compressions.reader.adapter import load_reader, reader_prompt

log = logging.getLogger(__name__)


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

    @property
    def layout(self) -> SquadPrompt:
        """The prompt around the context slot, as the model reads it."""
        return SquadPrompt(self.tokenizer, self.prompt, tuple(self.shots))

    def compress(self, context: str, question: str = "") -> CompressedContext:
        """What the model reads for this context (the question matters to question-aware methods only)."""
        return self.method.compress_many([context], [question], self.budget)[0]

    def answer(self, context: str, question: str, max_new_tokens: int = 32) -> str:
        compressed = self.compress(context, question)
        _, generated = read_compressed(self.model, self.method, [compressed], [question], self.layout, max_new_tokens)
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
    *,
    dtype: str = "float32",
    llm: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    solved_from: Sequence[SquadExample] = (),
    decoder: str | None = None,
    **options,
) -> Compressor | GistCompressor:
    """Any method by name or saved folder; `options` are the method's own (e.g. `ranker="embedding"`).

    For text and KV methods: `llm`/`tokenizer` reuse a loaded model (one already wearing the reader's
    adapter keeps it), a prompt with solved examples takes them from `solved_from` (a train split), and
    `decoder` (a learned checkpoint trained with a decoder adapter) makes that checkpoint's decoder the
    reader, so that text rows are read as the learned row beside them. A learned checkpoint or a gist
    model loads its own model."""
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
    if decoder:
        llm, tokenizer, model, reader, prompt = _learned_decoder(decoder, model, reader, device)
    model = model or DEFAULT_MODEL
    if llm is None or tokenizer is None:
        llm, tokenizer = load_model(model, dtype, device)
    prompt = prompt or SquadPromptConfig(shots=0)  # solved examples need a train split
    if reader:
        llm = llm if isinstance(llm, PeftModel) else load_reader(llm, reader)
        trained = reader_prompt(reader)  # a reader learned its answer format from the prompt it was trained on
        if trained is not None and trained != dataclasses.asdict(prompt):
            log.info("reading with the reader's training prompt %s", trained)
            prompt = SquadPromptConfig(**trained)
    shots = pick_shots(list(solved_from), prompt.shots) if prompt.shots else []
    if len(shots) < prompt.shots:
        raise ConfigError(f"prompt.shots={prompt.shots}: pass at least as many solved examples (solved_from=, a train split)")
    layout = SquadPrompt(tokenizer, prompt, tuple(shots))
    method = build_method(name_or_path, tokenizer, budget, target_model=llm, slot_prompt=layout, **options)
    return Compressor(method, llm, tokenizer, prompt, budget, shots, name_or_path, model, reader, decoder)


def _learned_decoder(path: str, model: str | None, reader: str | None, device: str):
    """(llm, tokenizer, model name, reader, prompt) of a checkpoint's decoder: its LLM with the reader merged
    and its own decoder adapter on, and the prompt it was trained with."""
    checked_compressor_settings(path, model=model, reader=reader)
    pipeline = SoftPromptModel.from_pretrained(path, device=device)
    trained = pipeline.config
    if not trained.use_lora:
        raise ConfigError(f"{path} was trained for a frozen decoder: read text with its reader ({trained.reader}), not decoder=")
    return pipeline.llm, pipeline.tokenizer, trained.model, trained.reader, trained.prompt


def _learned(path: Path, budget: int | None, model: str | None, reader: str | None, device: str) -> Compressor:
    """A checkpoint fixes its LLM (with the reader merged in), M and the prompt it was trained with."""
    checked_compressor_settings(path, model=model, budget=budget, reader=reader)  # before loading anything
    method = LearnedContext.from_checkpoint(path, device)
    trained = method.pipeline.config
    pipeline = method.pipeline
    return Compressor(method, pipeline.llm, pipeline.tokenizer, trained.prompt, trained.budget, [], method.name, trained.model, trained.reader)
