"""The report of a grid folder: results_summary.json, results.md and pareto.png (quality vs compression).

Rows are the cells' metrics.json; the plot has one series per method over its budgets, and the
unbudgeted bounds (`full`, `none`, and the gist controls) as horizontal lines, since they have no compression ratio to vary.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from compressions.errors import CompressionsError  # noqa: E402
from compressions.experiments.grid import finished_metrics  # noqa: E402
from compressions.experiments.report import write_results  # noqa: E402

BOUNDS = ("full", "none", "pos_control", "neg_control")
GRID_COLUMNS = (
    ("cell", "cell", "{}"),
    ("method", "method", "{}"),
    ("budget", "M", "{}"),
    ("reader", "reader", "{}"),
    ("compression_ratio", "ratio", "{:.2f}"),
    ("f1", "F1", "{:.1f}"),
    ("exact_match", "EM", "{:.1f}"),
    ("rougeL", "ROUGE-L", "{:.1f}"),
    ("seconds_per_example", "s/example", "{:.2f}"),
    ("parameters", "parameters", "{:,}"),
    ("n", "n", "{}"),
)


def collect_rows(folder: Path) -> list[dict]:
    """One row per finished cell, in name order, with its folder name as `cell`."""
    rows = []
    for cell in sorted(p for p in folder.iterdir() if p.is_dir()):
        metrics = finished_metrics(cell)
        if metrics is not None:
            rows.append({"cell": cell.name, **metrics})
    return rows


def pareto_plot(rows: list[dict], path: Path, metric: str = "f1") -> Path:
    """Quality against compression ratio (log scale); full and none as horizontal lines."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    series: dict[str, list[tuple[float, float, int]]] = {}
    for row in rows:
        if row.get(metric) is None:
            continue
        label = f"{row['method']} + reader" if row.get("reader") else row["method"]  # one series per reader
        if row.get("method") in BOUNDS:
            style = "-" if row["method"] in ("full", "pos_control") else ":"
            color = "gray" if row.get("reader") else "black"
            ax.axhline(row[metric], color=color, linestyle=style, linewidth=1, label=f"{label} ({row[metric]:.1f})")
        elif row.get("compression_ratio"):
            series.setdefault(label, []).append((row["compression_ratio"], row[metric], row.get("budget")))
    for method, points in sorted(series.items()):
        points.sort()
        line = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=method)[0]
        for x, y, budget in points:
            ax.annotate(f"M={budget}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=line.get_color())
    if not ax.lines:
        plt.close(fig)
        raise CompressionsError(f"no row has {metric!r} to plot")
    if series:
        ax.set_xscale("log")
        plain = FuncFormatter(lambda x, _: f"{x:g}")  # 5, 10 rather than 5x10^0
        ax.xaxis.set_major_formatter(plain)
        ax.xaxis.set_minor_formatter(plain)
    ax.set_xlabel("compression ratio (context tokens / kept tokens, log scale)")
    ax.set_ylabel(metric.upper() if len(metric) <= 2 else metric)
    ax.set_title(f"{ax.get_ylabel()} vs compression ratio")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(folder: str | Path) -> str:
    """results_summary.json, results.md and pareto.png in `folder`; returns the markdown table."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompressionsError(f"grid folder not found: {folder}")
    rows = collect_rows(folder)
    if not rows:
        raise CompressionsError(f"no finished cell (metrics.json) under {folder}")
    table = write_results(folder, rows, GRID_COLUMNS)
    metric = "f1" if any(r.get("f1") is not None for r in rows) else "rougeL"
    pareto_plot(rows, folder / "pareto.png", metric)
    return table
