"""Results tables: one row per run, as markdown and JSON."""

from __future__ import annotations

from pathlib import Path

from compressions.store.run_folder import atomic_write_json, atomic_write_text

SQUAD_COLUMNS = (
    ("method", "method", "{}"),
    ("budget", "M", "{}"),
    ("f1", "F1", "{:.1f}"),
    ("f1_ci95", "F1 95% CI", "{0[0]:.1f}-{0[1]:.1f}"),
    ("exact_match", "EM", "{:.1f}"),
    ("gold_in_prediction", "gold in answer %", "{:.1f}"),
    ("mean_kept_tokens", "kept tokens", "{:.1f}"),
    ("compression_ratio", "ratio", "{:.2f}"),
    ("seconds_per_example", "s/example", "{:.2f}"),
    ("n", "n", "{}"),
)


def _cell(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def markdown_table(rows: list[dict], columns=SQUAD_COLUMNS) -> str:
    header = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join([header, rule, *body]) + "\n"


def write_results(folder: str | Path, rows: list[dict], columns=SQUAD_COLUMNS) -> str:
    """results_summary.json + results.md in `folder`; returns the markdown."""
    table = markdown_table(rows, columns)
    atomic_write_json(Path(folder) / "results_summary.json", rows)
    atomic_write_text(Path(folder) / "results.md", table)
    return table
