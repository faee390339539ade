"""One learned-compressor run: train it (compressors.train.fit_compressor), then score the trained pipeline
as it is in memory with the SQuAD harness, in the run's `eval/` folder, exactly as `eval squad --method
learned --checkpoint DIR` scores the checkpoint it saved (the same method object, the same reading)."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.api import saved_compressor
from compressions.compressors.method import LearnedContext
from compressions.compressors.selector import WEIGHTS, SelectorConfig, train_selector
from compressions.compressors.train import CompressorTrainConfig, fit_compressor
from compressions.data.squad import SquadExample, load_squad
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad
from compressions.store.run_folder import atomic_write_json, is_main_process

log = logging.getLogger(__name__)


def train_compressor(
    config: CompressorTrainConfig,
    train_examples: list[SquadExample] | None = None,
    eval_examples: list[SquadExample] | None = None,
    llm: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: bool = True,
) -> dict:
    """Train, save the checkpoint, evaluate; returns training_summary.json's content (its `eval`: the
    harness's metrics on the first `eval_limit` validation questions)."""
    config.validate()
    if train_examples is None:
        train_examples = load_squad(config.data, "train", config.data_dir, train_articles=config.train_articles)
    if eval_examples is None:
        eval_examples = load_squad(config.data, "validation", config.data_dir, train_articles=config.train_articles)
    train_missing_scorer(config, train_examples, progress)
    summary, pipeline = fit_compressor(config, train_examples, eval_examples, llm, tokenizer, progress)
    if config.eval_limit and is_main_process():  # one evaluation, by rank 0, under several processes
        run = Path(summary["checkpoint"]).parent
        eval_config = SquadEvalConfig(
            method="learned",
            checkpoint=summary["checkpoint"],
            limit=config.eval_limit,
            documents=config.documents,
            max_new_tokens=config.max_new_tokens,
            device=str(pipeline.device),
            out=str(run / "eval"),
        )
        compressor = saved_compressor(LearnedContext(pipeline))
        summary["eval"] = evaluate_squad(eval_config, eval_examples, train_examples, progress=progress, compressor=compressor)
        atomic_write_json(run / "training_summary.json", summary)
    return summary


def train_missing_scorer(config: CompressorTrainConfig, train_examples: list[SquadExample], progress: bool = True) -> None:
    """`restore` ranks tokens with a `train selector` probe: one its config names that is not there yet is
    trained first, on the same train split and documents, reading the same prompt (so one command runs on a
    fresh clone)."""
    scorer = config.pipeline.compressor.get("scorer") if config.pipeline.arch == "restore" else None
    if scorer is None or (Path(scorer) / WEIGHTS).is_file() or not is_main_process():
        return
    log.info("restore: no selector probe at %s; training it first (`compressions train selector`)", scorer)
    selector = SelectorConfig(
        model=config.pipeline.model, documents=config.documents or config.pipeline.max_context_tokens, data=config.data,
        data_dir=config.data_dir, train_articles=config.train_articles, prompt=config.pipeline.prompt, out=scorer,
    )  # fmt: skip
    train_selector(selector, train_examples, progress)
