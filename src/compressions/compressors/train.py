"""Train a soft-token compressor on SQuAD: features, the objective, training.loop.train, a checkpoint and
collapse diagnostics on validation contexts (experiments.compressor_run then scores it with the harness).

Run folder: config.json, environment.json, train_log.jsonl (one row per optimizer step: loss terms,
cosine diagnostics, first-token accuracy), checkpoint/, training_summary.json, eval/ (harness run).
"""

from __future__ import annotations

import functools
import logging
import statistics
import time
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.compressors.batches import collate, collate_questions, question_groups, right_pad, squad_features
from compressions.compressors.losses import LossConfig
from compressions.compressors.objective import CompressorObjective, soft_token_diagnostics
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.compressors.pretraining import TASKS, pretraining_features
from compressions.data.documents import pack_documents
from compressions.data.prompts import solved_examples
from compressions.data.squad import SquadExample
from compressions.errors import ConfigError
from compressions.methods.base import check_budget_fits
from compressions.models import load_model
from compressions.store.run_folder import RunFolder, is_main_process
from compressions.training.config import TrainConfig
from compressions.training.loop import train

log = logging.getLogger(__name__)

# Sizes, as config overrides applied after a --config file. `quick` is a check (under 15 minutes on 2 CPU
# cores for selected_residual with the encoder LoRA at M=32, ~12 s per step of 8 questions when alone);
# `validate` is one grid cell (100 steps, all 783 validation questions; 25-45 minutes here); `full` is for a GPU.
PRESETS = {
    "test": ["train.max_steps=2", "train.batch_size=2", "train.micro_batch_size=2", "train_limit=8", "eval_limit=4"],
    "quick": ["train.max_steps=30", "train.batch_size=8", "train.micro_batch_size=4", "eval_limit=100"],
    "validate": ["train.max_steps=100", "train.batch_size=8", "train.micro_batch_size=4", "eval_limit=783"],
    "full": ["train.max_steps=2000", "train.batch_size=16", "train.micro_batch_size=8", "eval_limit=0"],
}


def _train_defaults() -> TrainConfig:
    return TrainConfig(learning_rate=1e-4, warmup_ratio=0.05, max_steps=200, batch_size=8, micro_batch_size=4)


@dataclass
class CompressorTrainConfig:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=_train_defaults, metadata={"help": "learning_rate = the compressor's"})
    lora_learning_rate: float = field(default=5e-5, metadata={"help": "LR of the LoRA parameters (pipeline.use_lora)"})
    data: str = field(default="squad", metadata={"help": "file, short name in the data dir, or hub id"})
    data_dir: str | None = field(default=None, metadata={"help": "default: $COMPRESSIONS_DATA_DIR"})
    train_articles: int = field(default=20, metadata={"help": "local files: first N articles are train"})
    documents: int | None = field(
        default=None,
        metadata={"help": "pack consecutive paragraphs of an article into documents of at most N tokens, to train and evaluate on (512: the seeds' lengths)"},
    )
    train_limit: int | None = field(default=None, metadata={"help": "first N training questions (default all)"})
    eval_limit: int = field(default=100, metadata={"help": "validation questions evaluated after training; 0 skips"})
    diagnostic_contexts: int = field(default=64, metadata={"help": "validation contexts for the collapse diagnostic"})
    max_new_tokens: int | None = field(default=None, metadata={"help": "evaluation; default: answer-length diagnostic"})
    out: str | None = field(default=None, metadata={"help": "run folder (default runs/compressors/<arch>-M<budget>)"})
    task: str = field(
        default="squad",
        metadata={"help": "squad (answers) | autoencode | continue | pretrain (both) on the training paragraphs"},
    )
    init_from: str | None = field(
        default=None, metadata={"help": "a checkpoint of the same pipeline to start from (its weights; a new schedule and optimizer)"}
    )
    untrained: bool = field(
        default=False, metadata={"help": "save the starting pipeline as the checkpoint, no step taken (a run's step-0 row)"}
    )
    presets: dict[str, list[str]] = field(
        default_factory=dict, metadata={"help": "sizes of this config's own for --preset NAME (replacing PRESETS[NAME]), e.g. for a step that is slow"}
    )

    def validate(self) -> None:
        self.pipeline.validate()
        self.loss.validate()
        self.train.validate()
        if self.train_limit is not None and self.train_limit < 1:
            raise ConfigError(f"train_limit must be >= 1, got {self.train_limit}")
        if self.task != "squad" and self.pipeline.questions_per_context > 1:
            raise ConfigError(f"pipeline.questions_per_context > 1 needs questions: task {self.task!r} has none")
        if self.task != "squad" and self.task not in TASKS:
            raise ConfigError(f"task must be squad or one of {TASKS}, got {self.task!r}")
        if self.documents is not None and not 1 <= self.documents <= self.pipeline.max_context_tokens:
            raise ConfigError(f"documents must be between 1 and pipeline.max_context_tokens ({self.pipeline.max_context_tokens}), got {self.documents}")
        if not set(self.presets) <= set(PRESETS):
            raise ConfigError(f"presets: names must be among {', '.join(PRESETS)}, got {', '.join(sorted(self.presets))}")
        if self.loss.reconstruction and (self.pipeline.arch != "gist_kv" or self.pipeline.compressor.get("layout") != "spread"):
            raise ConfigError("loss.reconstruction: needs pipeline.arch=gist_kv with compressor.layout=spread (one gist per window)")
        if self.eval_limit < 0 or self.diagnostic_contexts < 0:
            raise ConfigError("eval_limit and diagnostic_contexts must be >= 0")

    @property
    def run_name(self) -> str:
        return f"{self.pipeline.arch}-M{self.pipeline.budget}"


def fit_compressor(
    config: CompressorTrainConfig,
    train_examples: list[SquadExample],
    eval_examples: list[SquadExample],
    llm: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: bool = True,
) -> tuple[dict, SoftPromptModel]:
    """Train and save the checkpoint; returns training_summary.json's content (its collapse diagnostic on
    `eval_examples`) and the trained pipeline, which `experiments.compressor_run` evaluates as it is.

    A given `llm` is frozen in place (and wrapped by LoRA when configured): pass one you own.
    """
    config.validate()
    if llm is None or tokenizer is None:
        llm, tokenizer = load_model(config.pipeline.model)
    check_budget_fits(config.pipeline.budget, llm.config)  # before M slots are built: a huge M grows until killed
    torch.manual_seed(config.train.seed)  # the compressor's initial weights
    shots = solved_examples(config.pipeline.prompt.shots, train_examples)  # as the harness picks them
    pipeline = SoftPromptModel.create(config.pipeline, llm, tokenizer, shots)
    if config.init_from:
        pipeline.load_weights(config.init_from)
    if config.documents:  # the solved examples stay paragraphs, as the harness shows them
        train_examples, eval_examples = (pack_documents(e, tokenizer, config.documents)[0] for e in (train_examples, eval_examples))
    examples = train_examples[: config.train_limit] if config.train_limit else train_examples
    if config.task == "squad":
        features = squad_features(pipeline, examples, progress=progress)
    else:  # unlabelled text: each distinct training paragraph once
        paragraphs = list(dict.fromkeys(e.context for e in examples))
        features = pretraining_features(pipeline, paragraphs, config.task, config.train.seed)
    n_features, per_context = len(features), config.pipeline.questions_per_context
    if per_context > 1:  # each unit: one context, up to `per_context` of its questions
        features = question_groups(features, per_context)
    collate_fn = functools.partial(
        collate_questions if per_context > 1 else collate, pad_id=tokenizer.pad_token_id, slot_ids=pipeline.slot_ids(), budget=config.pipeline.budget
    )
    objective = CompressorObjective(config.loss, config.train.max_steps, config.train.seed)
    groups = pipeline.trainable_groups(config.train.learning_rate, config.lora_learning_rate)

    with RunFolder(config.out or f"runs/compressors/{config.run_name}") as run:
        run.save_config(config)
        n_params = pipeline.compressor.num_parameters()
        log.info("%s: %d compressor parameters, %d %s training features", config.run_name, n_params, len(features), config.task)
        start = time.perf_counter()
        history = [] if config.untrained else train(
            pipeline, groups, objective, features, collate_fn, config.train, run.path / "train_log.jsonl", progress, objective.set_step,
            checkpoint_dir=run.path / "train_state", tensorboard_dir=run.tensorboard_dir,
        )
        train_seconds = time.perf_counter() - start
        checkpoint = pipeline.save_pretrained(run.path / "checkpoint") if is_main_process() else run.path / "checkpoint"
        last = history[-min(10, len(history)) :]
        summary = {
            "arch": config.pipeline.arch,
            "budget": config.pipeline.budget,
            "compressor_parameters": n_params,
            "trainable_parameters": sum(p.numel() for g in groups for p in g["params"]),
            "task": config.task,
            "train_questions" if config.task == "squad" else "train_texts": n_features,
            "steps": len(history),
            "train_seconds": train_seconds,
            "last_steps_mean": {k: statistics.fmean(r[k] for r in last) for k in last[0] if k != "step"} if last else {},
            "validation_collapse": collapse_diagnostic(pipeline, eval_examples, config.diagnostic_contexts),
            "checkpoint": str(checkpoint),
        }
        run.write_json("training_summary.json", summary)
    return summary, pipeline


@torch.no_grad()
def collapse_diagnostic(pipeline: SoftPromptModel, examples: list[SquadExample], n_contexts: int) -> dict:
    """Mean pairwise cosine of the soft tokens within and across the first n distinct contexts (each with
    its first question, which a question-aware compressor reads), and their norms against the LLM's mean
    embedding norm."""
    first_question: dict[str, SquadExample] = {}
    for e in examples:
        first_question.setdefault(e.context, e)
    firsts = list(first_question.values())[:n_contexts]
    if len(firsts) < 2:
        return {}
    pipeline.eval()
    device = pipeline.device
    ids, mask = right_pad([pipeline.compressor_ids(e.context, e.question) for e in firsts], pipeline.tokenizer.pad_token_id)
    soft, _ = pipeline.compress(ids.to(device), mask.to(device))
    return {"contexts": len(firsts), **soft_token_diagnostics(soft), "embedding_norm": pipeline.compressor.config.output_norm}
