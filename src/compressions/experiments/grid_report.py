"""The report of a grid folder: results_summary.json, results.md and pareto.png (quality vs compression).

Rows are the cells' metrics.json; the plot has one panel per reader (the base model, each SQuAD reader),
one series per method over its budgets, and the unbudgeted bounds (`full`, `none`, and the gist controls)
as horizontal lines, since they have no compression ratio to vary.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from compressions.errors import CompressionsError  # noqa: E402
from compressions.store.report import write_results  # noqa: E402
from compressions.store.run_folder import STATUS_FILE, UNREADABLE, finished_metrics, run_state  # noqa: E402

BOUNDS = ("full", "none", "pos_control", "neg_control")
GRID_COLUMNS = (
    ("cell", "cell", "{}"),
    ("method", "method", "{}"),
    ("budget", "M", "{}"),
    ("reader", "reader", "{}"),
    ("compression_ratio", "ratio", "{:.2f}"),
    ("f1", "F1", "{:.1f}"),
    ("f1_ci95", "F1 95% CI", "{0[0]:.1f}-{0[1]:.1f}"),
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


def unreadable_cells(folder: Path) -> list[str]:
    """'<cell> (<why>)' for each cell whose status.json cannot be read, or that says it finished but whose
    metrics.json cannot be: cells a report would otherwise leave out without a word."""
    found = []
    for cell in sorted(p for p in folder.iterdir() if p.is_dir()):
        state = run_state(cell)
        if state == UNREADABLE:
            found.append(f"{cell.name} ({STATUS_FILE} unreadable)")
        elif state == "finished" and finished_metrics(cell) is None:
            found.append(f"{cell.name} (metrics.json unreadable)")
    return found


def report_order(rows: list[dict]) -> list[dict]:
    """The bounds first (full, none, the gist controls), then each reader's rows by budget, then method."""
    def key(row: dict) -> tuple:
        method = str(row.get("method", ""))
        bound = BOUNDS.index(method) if method in BOUNDS else len(BOUNDS)
        return bound, row.get("reader") or "", row.get("budget") or 0, method, row["cell"]

    return sorted(rows, key=key)


def _panels(rows: list[dict]) -> dict[str, list[dict]]:
    """Rows per reader panel: text methods where their reader put them; learned compressors (trained on
    answers, no reader) in every panel, beside both readers' baselines."""
    readers = sorted({r["reader"] for r in rows if r.get("reader")})
    panels: dict[str, list[dict]] = {"base model": []} | {f"reader: {name}": [] for name in readers}
    for row in rows:
        if str(row.get("method", "")).startswith("learned"):
            for panel in panels.values():
                panel.append(row)
        else:
            panels[f"reader: {row['reader']}" if row.get("reader") else "base model"].append(row)
    return {title: panel for title, panel in panels.items() if panel}


BAR_SPREAD = 1.025  # the factor (log x axis) between the interval bars of two methods at one ratio


def pareto_plot(rows: list[dict], path: Path, metric: str = "f1") -> Path:
    """Quality against compression ratio (log scale), one panel per reader; full and none as
    horizontal lines; a method keeps its colour across panels. A row's 95% interval (`<metric>_ci95`), when
    it has one, is a vertical bar on its point, or a grey band around a bound's line."""
    rows = [r for r in rows if r.get(metric) is not None]
    if not rows:
        raise CompressionsError(f"no row has {metric!r} to plot")
    panels = _panels(rows)
    methods = sorted({r["method"] for r in rows if r["method"] not in BOUNDS})
    colors = dict(zip(methods, (plt.cm.tab10.colors + plt.cm.tab20.colors[1::2]) * 2))  # strong hues first
    markers = dict(zip(methods, "osD^vPX*<>" * 4))  # and a marker, for hues that come close
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 6), dpi=120, sharey=True, squeeze=False)
    for ax, (title, panel) in zip(axes[0], panels.items()):
        series: dict[str, list[tuple[float, float, int]]] = {}
        for row in panel:
            interval = row.get(f"{metric}_ci95")
            if row["method"] in BOUNDS:
                style = "-" if row["method"] in ("full", "pos_control") else ":"
                ax.axhline(row[metric], color="black", linestyle=style, linewidth=1, label=f"{row['method']} ({row[metric]:.1f})")
                if interval:
                    ax.axhspan(*interval, color="black", alpha=0.06, linewidth=0)
            elif row.get("compression_ratio"):
                series.setdefault(row["method"], []).append((row["compression_ratio"], row[metric], row.get("budget"), interval))
        # methods at one ratio share an x: there, each one's interval bar sits a little aside, so that none hides another
        sharing: dict[float, list[str]] = {}
        for method, points in sorted(series.items()):
            for point in points:
                sharing.setdefault(round(point[0], 1), []).append(method)

        def aside(method: str, x: float) -> float:
            names = sharing[round(x, 1)]
            return x * BAR_SPREAD ** (names.index(method) - (len(names) - 1) / 2)

        for method, points in sorted(series.items()):
            points.sort(key=lambda p: p[0])
            style = "--" if method.startswith("learned") else "-"
            ax.plot([p[0] for p in points], [p[1] for p in points], style, marker=markers[method], color=colors[method], label=method)
            bars = [p for p in points if p[3]]
            if bars:
                below, above = [p[1] - p[3][0] for p in bars], [p[3][1] - p[1] for p in bars]
                xs = [aside(method, p[0]) for p in bars]
                ax.errorbar(xs, [p[1] for p in bars], yerr=[below, above], fmt="none", ecolor=colors[method], alpha=0.5)
        # Methods at one budget often share a ratio: one label per (budget, ratio), above the highest point.
        tops: dict[tuple, tuple[float, float]] = {}
        for x, y, budget, _ in (point for points in series.values() for point in points):
            key = (budget, round(x, 1))
            if key not in tops or y > tops[key][1]:
                tops[key] = (x, y)
        for (budget, _), (x, y) in sorted(tops.items(), key=lambda item: item[1]):
            ax.annotate(f"M={budget}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        if series:
            ratios = [p[0] for points in series.values() for p in points]
            ax.set_xscale("log")
            ax.set_xlim(min(ratios) / 1.3, max(ratios) * 1.3)  # every point inside the axes, with room for its label
            ax.set_xticks(sorted({round(x, 1) for x in ratios}))  # a label at each ratio a row has, and only there
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))  # 6.5 rather than 6.5x10^0
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.set_xlabel("compression ratio (context tokens / kept tokens, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    label = metric.upper() if len(metric) <= 2 else metric
    axes[0][0].set_ylabel(label)
    fig.suptitle(f"{label} vs compression ratio")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(folder: str | Path) -> str:
    """results_summary.json, results.md and pareto.png in `folder`; returns the markdown table."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompressionsError(f"grid folder not found: {folder}")
    rows = report_order(collect_rows(folder))
    if not rows:
        raise CompressionsError(f"no finished cell (metrics.json) under {folder}")
    table = write_results(folder, rows, GRID_COLUMNS)
    metric = "f1" if any(r.get("f1") is not None for r in rows) else "rougeL"
    pareto_plot(rows, folder / "pareto.png", metric)
    return table
