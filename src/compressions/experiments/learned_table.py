"""The learned-compressor table: each finished `eval squad` run's F1 and EM with their intervals, its paired
difference with a baseline run on the same questions (prefix truncation, say), the decoder that read it, and
for a learned checkpoint
what its training run recorded (steps, time, trainable parameters, and the collapse diagnostic: cosine of the
soft tokens within and across validation contexts, their norm against the embeddings').

    compressions eval table runs/squad/learned-gist_kv-M32-eval ... --against runs/squad/prefix-M32-reader-scores
"""

from __future__ import annotations

import json
from pathlib import Path

from compressions.errors import ConfigError
from compressions.evaluation.intervals import compare_runs
from compressions.store.run_folder import finished_metrics

COLUMNS = (
    ("run", "run", "{}"),
    ("method", "method", "{}"),
    ("budget", "M", "{}"),
    ("question_aware", "reads the question", "{}"),
    ("read_by", "read by", "{}"),
    ("f1", "F1", "{:.1f}"),
    ("f1_ci95", "95% CI", "[{0[0]:.1f}, {0[1]:.1f}]"),
    ("exact_match", "EM", "{:.1f}"),
    ("vs", "vs baseline (paired)", "{0[0]:+.1f} [{0[1]:+.1f}, {0[2]:+.1f}]"),
    ("steps", "steps", "{}"),
    ("train_minutes", "training min", "{:.0f}"),
    ("trainable_parameters", "trainable parameters", "{:,}"),
    ("cosine_within", "cosine within", "{:.2f}"),
    ("cosine_across", "cosine across", "{:.2f}"),
    ("soft_norm", "norm", "{:.1f}"),
    ("embedding_norm", "embedding norm", "{:.2f}"),
)


def training_summary(run: Path) -> dict:
    """The training_summary.json beside the checkpoint a learned run read, or {} (text methods, or a
    checkpoint moved away from its run folder)."""
    checkpoint = json.loads((run / "config.json").read_text(encoding="utf-8")).get("checkpoint")
    summary = Path(checkpoint).parent / "training_summary.json" if checkpoint else None
    return json.loads(summary.read_text(encoding="utf-8")) if summary and summary.is_file() else {}


def read_by(config: dict) -> str:
    """Which decoder read an `eval squad` run (its config.json): the LLM, a reader (frozen), or the decoder a
    learned checkpoint trained with its own adapter (`pipeline.use_lora`), for its row and for text rows
    read with `decoder=`."""
    checkpoint, reader = config.get("decoder") or config.get("checkpoint"), config.get("reader")
    saved = Path(checkpoint) / "pipeline_config.json" if checkpoint else None
    if saved is not None and saved.is_file():
        pipeline = json.loads(saved.read_text(encoding="utf-8"))
        if pipeline.get("use_lora"):
            folder = Path(checkpoint)
            return f"decoder of {folder.parent.name if folder.name == 'checkpoint' else folder.name}"
        reader = pipeline.get("reader")
    return f"reader {reader}" if reader else "the LLM"


def table_row(run: str | Path, against: str | Path | None = None) -> dict:
    run = Path(run)
    metrics = finished_metrics(run)
    if metrics is None:
        raise ConfigError(f"{run} is not a finished `eval squad` run (no metrics.json)")
    label = run.parent.name if run.name == "eval" else run.name  # a trainer's own evaluation: name it by its run
    row = {"run": label, **{k: metrics.get(k) for k in ("method", "budget", "question_aware", "f1", "f1_ci95", "exact_match")}}
    row["read_by"] = read_by(json.loads((run / "config.json").read_text(encoding="utf-8")))
    if against is not None and (run / "scores.json").is_file():  # runs from before per-question scores: no pairing
        d = compare_runs(run, against)["f1"]
        row["vs"] = [d["mean"], d["low"], d["high"]]
    summary = training_summary(run)
    if summary:
        collapse = summary.get("validation_collapse", {})
        row |= {"steps": summary["steps"], "train_minutes": summary["train_seconds"] / 60, "trainable_parameters": summary.get("trainable_parameters")}
        row |= {k: collapse.get(k) for k in ("cosine_within", "cosine_across", "soft_norm", "embedding_norm")}
    return row


def learned_table(runs: list[str | Path], against: str | Path | None = None) -> list[dict]:
    return [table_row(run, against) for run in runs]
