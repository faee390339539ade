"""Gist retention against training examples and K, from the cells of a gist grid (dose-response).

Each cell (gist.cell) trains one condition and scores it alone, keeping every example's ROUGE-L and NLL in
`eval/scores.json`. Cells trained on the same number of examples with the same K pair up here, example by
example: retention on ROUGE-L and on the loss with paired bootstrap intervals, and the two controls a gist
model must beat, each as a paired difference: the gists of another instruction (`wrong_instruction`) and
the instruction cut to its first K tokens read by pos_control (`instruction-first-K`). Cells that generated
for different numbers of examples (`rouge_limit`) pair on the first ones they all scored ("ROUGE on").
Writes dose.json, dose.md and dose.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from compressions.errors import CompressionsError  # noqa: E402
from compressions.evaluation.intervals import paired_difference  # noqa: E402
from compressions.gist.evaluate import common_examples, retentions  # noqa: E402
from compressions.store.report import markdown_table  # noqa: E402
from compressions.store.run_folder import atomic_write_json, atomic_write_text, finished_metrics  # noqa: E402

DOSE_COLUMNS = (
    ("examples", "train examples", "{:,}"),
    ("k", "K", "{}"),
    ("split", "split", "{}"),
    ("rouge_n", "ROUGE on", "{:,}"),
    ("gist", "gist-K", "{:.1f}"),
    ("pos_control", "pos_control", "{:.1f}"),
    ("neg_control", "neg_control", "{:.1f}"),
    ("gist_retention", "ROUGE-L retention", "{:.2f}"),
    ("gist_retention_ci95", "95% CI", "{0[0]:.2f} to {0[1]:.2f}"),
    ("loss_retention", "loss retention", "{:.2f}"),
    ("loss_retention_ci95", "95% CI", "{0[0]:.2f} to {0[1]:.2f}"),
    ("vs_wrong_instruction", "gist - wrong instruction [95% CI]", "{}"),
    ("vs_truncation", "gist - first-K truncation [95% CI]", "{}"),
    ("vs_gist_1", "gist-K - gist-1 [95% CI]", "{}"),
)


def gist_cells(paths: list[str | Path]) -> list[tuple[dict, dict]]:
    """(metrics.json row, eval/scores.json) of each finished gist cell among `paths` (cells or grid folders)."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise CompressionsError(f"{path} is not a folder (give gist grid folders or their cell folders)")
        folders += [path] if (path / "eval").is_dir() else sorted(p for p in path.iterdir() if (p / "eval").is_dir())
    cells = []
    for folder in folders:
        row = finished_metrics(folder)
        if row is None or not (folder / "eval" / "scores.json").is_file():
            continue
        cells.append((row, json.loads((folder / "eval" / "scores.json").read_text(encoding="utf-8"))))
    if not cells:
        raise CompressionsError(f"no finished gist cell with eval/scores.json under {', '.join(map(str, paths))}")
    return cells


def _difference(scores: dict, a: str, b: str, split: str) -> str | None:
    """ROUGE-L of model a minus model b on the same examples, as 'mean [low, high]' (x100)."""
    if any("rougeL" not in scores.get(m, {}).get(split, {}) for m in (a, b)):
        return None  # one of them did not generate (missing, or a loss-only cell)
    first, second = common_examples([[100 * x for x in scores[m][split]["rougeL"]] for m in (a, b)])
    d = paired_difference(first, second)
    return f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"


def dose_rows(cells: list[tuple[dict, dict]]) -> list[dict]:
    """One row per (training examples, K, split): each condition's ROUGE-L, both retentions with intervals,
    and the gist model against its two controls and, for K > 1, against gist-1 trained on as many examples.
    Conditions missing from a group leave dashes."""
    groups: dict[tuple[int, int], dict] = {}
    for row, scores in cells:
        groups.setdefault((row["train_examples"], row["budget"]), {}).update(scores)
    rows = []
    for (examples, k), scores in sorted(groups.items()):
        gist = f"gist-{k}"
        gist_1 = groups.get((examples, 1), {}).get("gist-1") if k != 1 else None  # gist-1 of the same size
        retained = retentions(scores)
        for split in sorted({s for by_split in scores.values() for s in by_split}):
            rouge = {m: v for m, by_split in scores.items() if (v := by_split.get(split, {}).get("rougeL"))}
            n = min(map(len, rouge.values()), default=0)  # the examples every model generated for
            mean = {m: 100 * sum(v[:n]) / n for m, v in rouge.items()}
            rows.append({
                "examples": examples, "k": k, "split": split, "rouge_n": n,
                "gist": mean.get(gist), "pos_control": mean.get("pos_control"), "neg_control": mean.get("neg_control"),
                **{name: values.get(split) for name, values in retained.items()},
                "vs_wrong_instruction": _difference(scores, gist, f"{gist}-wrong_instruction", split),
                "vs_truncation": _difference(scores, gist, f"instruction-first-{k}", split),
                "vs_gist_1": _difference({gist: scores.get(gist, {}), "gist-1": gist_1}, gist, "gist-1", split) if gist_1 else None,
            })  # fmt: skip
    return rows


def dose_plot(rows: list[dict], path: Path) -> Path:
    """Retention on ROUGE-L and on the loss against training examples (log scale), one series per split and K,
    with 95% intervals as error bars. Each K is nudged sideways so series at one size stay apart, and each
    panel shows at most -1 to 2: a ROUGE-L retention whose controls nearly tie has intervals many times wider,
    which would flatten every other series (they run off the panel instead)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=120)
    ks = sorted({r["k"] for r in rows})
    for ax, name, title in zip(axes, ("gist_retention", "loss_retention"), ("ROUGE-L retention", "loss retention")):
        for series in sorted({(r["split"], r["k"]) for r in rows}):
            points = [r for r in rows if (r["split"], r["k"]) == series and r.get(name) is not None]
            if not points:
                continue
            x = [p["examples"] * 1.04 ** ks.index(series[1]) for p in points]
            y = [p[name] for p in points]
            ci = [p.get(f"{name}_ci95") or (p[name], p[name]) for p in points]
            err = [[v - lo for v, (lo, _) in zip(y, ci)], [hi - v for v, (_, hi) in zip(y, ci)]]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"{series[0]}, gist-{series[1]}")
        ax.axhline(0, color="black", linestyle=":", linewidth=1)  # neg_control
        ax.axhline(1, color="black", linewidth=1)  # pos_control
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, -1.0), min(high, 2.0))
        ax.set_xscale("log")
        ax.set_xlabel("training examples (log scale)")
        ax.set_ylabel("retention (0 = neg_control, 1 = pos_control)")
        ax.set_title(f"{title}: (gist - neg) / (pos - neg)")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a panel whose controls tie everywhere has no retention
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_dose(paths: list[str | Path], out: str | Path) -> str:
    """dose.json, dose.md and dose.png in `out`; returns the markdown table."""
    rows = dose_rows(gist_cells(paths))
    out = Path(out)
    table = markdown_table(rows, DOSE_COLUMNS)
    atomic_write_json(out / "dose.json", rows)
    atomic_write_text(out / "dose.md", table)
    dose_plot(rows, out / "dose.png")
    return table
