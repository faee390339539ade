"""One gist condition as a single run, for grids of K x condition: train it, then score it on Alpaca+.

Run folder: `train/` (the `gist train` run folder, its model in `train/model`), `eval/` (the
`gist eval` run folder) and `metrics.json`, written last, so a grid only skips a cell that got that far.
The row in metrics.json is shaped for the grid report: `method` is gist-K / pos_control / neg_control,
`budget` is K, `compression_ratio` is mean instruction tokens / K, and `rougeL` is on the first split.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from compressions.data.alpaca import load_alpaca
from compressions.evaluation.efficiency import compression_ratio
from compressions.gist.config import GistConfig
from compressions.gist.data import instruction_lengths
from compressions.gist.evaluate import SPLITS, GistEvalConfig, evaluate_gist, model_name
from compressions.gist.train import train_gist
from compressions.models.loading import load_tokenizer
from compressions.store.run_folder import RunFolder


@dataclass
class GistRunConfig:
    train: GistConfig = field(default_factory=GistConfig, metadata={"help": "`gist train` settings (condition, K, mode...)"})
    eval: GistEvalConfig = field(
        default_factory=lambda: GistEvalConfig(splits=SPLITS[:1], limit=200),
        metadata={"help": "`gist eval` settings; its model paths and out are filled in by the run"},
    )
    out: str | None = field(default=None, metadata={"help": "run folder (default runs/gist/<run_name>)"})

    def validate(self) -> None:
        self.train.validate()

    @property
    def run_name(self) -> str:
        return self.train.run_name


def run_gist_cell(config: GistRunConfig, progress: bool = True) -> dict:
    """Train `config.train`, evaluate the trained model, write and return the cell's metrics.json row."""
    config.validate()
    out = Path(config.out or f"runs/gist/{config.run_name}")
    train = dataclasses.replace(config.train, out=str(out / "train"))
    with RunFolder(out) as run:
        run.save_config(config)
        trained = train_gist(train, progress=progress)
        evaluation = dataclasses.replace(config.eval, out=str(out / "eval"), **{train.condition: str(out / "train")})
        scores = evaluate_gist(evaluation, progress=progress)
        name = model_name(train.condition, {"num_gist": train.num_gist})
        first = scores[name][evaluation.splits[0]]
        row = {
            "method": name,
            "budget": train.num_gist,
            "compression_ratio": _compression_ratio(train, evaluation) if train.condition == "gist" else None,
            "rougeL": first.get("rougeL"),  # absent when the cell scores the loss only (eval.rouge=false)
            "split": evaluation.splits[0],
            "n": first["n"],
            "rouge_n": first.get("rouge_n"),
            "seconds_per_example": first.get("seconds_per_example"),
            "train_examples": trained["examples"],
            "train_seconds": trained["train_seconds"],
            "final_loss": trained["final_loss"],
            "scores": scores[name],
        }
        run.write_metrics(row)
    return row


def _compression_ratio(train: GistConfig, evaluation: GistEvalConfig) -> float:
    """Mean instruction tokens / K on the scored split (the controls keep or drop everything: no ratio)."""
    tokenizer = load_tokenizer(train.model)
    examples = load_alpaca(evaluation.splits[0], evaluation.data_dir)[: evaluation.limit]
    return compression_ratio(instruction_lengths(tokenizer, examples), train.num_gist)
