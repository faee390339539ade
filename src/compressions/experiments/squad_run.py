"""One SQuAD evaluation run: load the questions and the method with the model that reads it (any family,
through `compressions.load_compressor`), then the harness (evaluation/squad_eval.py) scores it into the
run folder. The run folder is made first, so that its run.log follows the loading too."""

from __future__ import annotations

import dataclasses

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.api import Compressor, load_compressor
from compressions.data.squad import SquadExample, load_squad
from compressions.errors import ConfigError
from compressions.evaluation.squad_eval import SquadEvalConfig, evaluate_compressor
from compressions.store.run_folder import RunFolder


def evaluate_squad(
    config: SquadEvalConfig,
    examples: list[SquadExample] | None = None,
    train_examples: list[SquadExample] | None = None,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: bool = True,
    compressor: Compressor | None = None,
) -> dict:
    """Run one method over the questions and write the run folder; returns metrics.json's content.

    `examples` / `train_examples` default to the configured data's split / train split. A model passed in
    is used by text and KV methods (with `config.reader`, the adapter goes onto it unless it already is a
    reader: a grid loads it once); a learned checkpoint loads its own. A `compressor` already in memory
    (a pipeline just trained) is scored as it is, instead of loading what `config` names.
    """
    if examples is None:
        examples = load_squad(config.data, config.split, config.data_dir, config.on_error, config.train_articles)
    if not examples:
        raise ConfigError(f"no questions in {config.data!r} split {config.split!r}")
    needs_train = config.prompt.shots > 0 or config.max_new_tokens is None
    if train_examples is None and needs_train:
        train_examples = load_squad(config.data, "train", config.data_dir, config.on_error, config.train_articles)
    with RunFolder(config.out or f"runs/eval/{config.run_name}") as run:
        compressor = compressor or load_compressor(
            config.source, config.budget, config.model, config.reader, config.prompt, config.device,
            dtype=config.dtype, llm=model, tokenizer=tokenizer, solved_from=train_examples or (), decoder=config.decoder,
            **config.method_options,
        )  # fmt: skip
        # as read: a checkpoint fixes its model, M, prompt and reader, a reader its prompt
        resolved = {
            "model": compressor.model_name, "budget": compressor.budget, "prompt": compressor.prompt,
            "reader": compressor.reader, "decoder": compressor.decoder,
        }  # fmt: skip
        config = dataclasses.replace(config, **resolved)
        run.save_config(config)
        return evaluate_compressor(run, config, compressor, examples, train_examples, progress)
