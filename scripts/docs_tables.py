"""Keep the tables in README.md and docs/*.md equal to the committed files they come from.

A page embeds a file between two markers, each at the start of its own line, the path relative to the
repository root:

    <!-- table: results/gist-dose/dose/dose.md -->
    ...the file's text, written here by this script...
    <!-- /table -->

    python scripts/docs_tables.py            # regenerate the generated files from results/, then rewrite every block
    python scripts/docs_tables.py --check    # exit 1 naming each block (and generated file) that disagrees

Some embedded files are themselves generated from committed per-example results (GENERATED below): the
default run writes them again with the command that made them, and `--check` recomputes them in memory
and compares, so a table cannot drift from its results either. Pages default to README.md and docs/*.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"^<!-- table: (?P<path>\S+) -->\n(?P<body>.*?)^<!-- /table -->", re.DOTALL | re.MULTILINE
)  # markers start their lines
OPENING = re.compile(r"^<!-- table: (\S+) -->", re.MULTILINE)


def _dose_table(root: Path) -> str:
    """dose.md as `compressions gist dose results/gist-dose` writes it, computed without writing."""
    from compressions.gist.dose import DOSE_COLUMNS, dose_rows, gist_cells
    from compressions.store.report import markdown_table

    return markdown_table(dose_rows(gist_cells([root / "results/gist-dose"])), DOSE_COLUMNS)


def _write_dose(root: Path) -> None:
    from compressions.gist.dose import write_dose

    write_dose([root / "results/gist-dose"], root / "results/gist-dose/dose")


def _grid_table(folder: str) -> Callable[[Path], str]:
    """results.md of a grid folder of committed cells, as `compressions report FOLDER` writes it."""
    def compute(root: Path) -> str:
        from compressions.experiments.grid_report import GRID_COLUMNS, collect_rows, report_order
        from compressions.store.report import markdown_table

        return markdown_table(report_order(collect_rows(root / folder)), GRID_COLUMNS)

    return compute


def _write_grid_report(folder: str) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        from compressions.experiments.grid_report import write_report

        write_report(root / folder)

    return write


class Headline(NamedTuple):
    label: str
    question_aware: bool | None  # None: nothing is compressed
    cell: str  # a committed run folder (metrics.json, scores.json)
    command: str
    against: str | None = None  # a cell to pair with (prefix truncation at the same M)


EVAL_512 = "compressions eval squad --documents 512 --limit 783"
HEADLINE = (
    Headline("full document", None, "results/documents-512-all/full-doc512", f"{EVAL_512} --method full"),
    Headline("no context", None, "results/documents-512-all/none-doc512", f"{EVAL_512} --method none"),
    Headline("`prefix` truncation", False, "results/documents-512-all/prefix-M32-doc512", f"{EVAL_512} --method prefix --budget 32"),
    Headline("`extractive` (TF-IDF sentences)", True, "results/documents-512-all/extractive-M32-doc512", f"{EVAL_512} --method extractive --budget 32",
             "results/documents-512-all/prefix-M32-doc512"),
    Headline("`snapkv` (KV press)", True, "results/documents-512-all/snapkv-M32-doc512", f"{EVAL_512} --method snapkv --budget 32",
             "results/documents-512-all/prefix-M32-doc512"),
    Headline("`streaming` (best question-agnostic press, tied with `expected_attention`)", False, "results/documents-512-all/streaming-M32-doc512",
             f"{EVAL_512} --method streaming --budget 32", "results/documents-512-all/prefix-M32-doc512"),
    Headline("**`restore`** (best learned, `best.yaml`)", False, "results/learned-512/restore-M32",
             "`compressions train compressor --config configs/compressors/best.yaml eval_limit=783`", "results/documents-512-all/prefix-M32-doc512"),
    Headline("`prefix` truncation", False, "results/documents-512-all/prefix-M64-doc512", f"{EVAL_512} --method prefix --budget 64"),
    Headline("**`restore`** (best learned)", False, "results/learned-512/restore-M64",
             "`compressions train compressor --config configs/compressors/best.yaml pipeline.budget=64 eval_limit=783`", "results/documents-512-all/prefix-M64-doc512"),
)  # fmt: skip


def _headline_table(root: Path) -> str:
    """The README's headline rows, each from its committed run folder; the paired column from both scores.json."""
    import json

    from compressions.evaluation.intervals import compare_runs

    lines = [
        "| method | reads the question | M (ratio) | F1 [95% CI] | EM | minus prefix at the same M, paired F1 [95% CI] | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in HEADLINE:
        m = json.loads((root / row.cell / "metrics.json").read_text(encoding="utf-8"))
        budget = f"{m['budget']} ({m['compression_ratio']:.1f}x)" if m.get("budget") else ("0" if m["method"] == "none" else "all")
        low, high = m["f1_ci95"]
        paired = ""
        if row.against:
            d = compare_runs(root / row.cell, root / row.against)["f1"]
            paired = f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"
        command = row.command if row.command.startswith("`") else f"`{row.command}`"
        aware = "-" if row.question_aware is None else "yes" if row.question_aware else "no"
        lines.append(f"| {row.label} | {aware} | {budget} | {m['f1']:.1f} [{low:.1f}, {high:.1f}] | {m['exact_match']:.1f} | {paired} | {command} |")
    return "\n".join(lines) + "\n"


def _write_headline(root: Path) -> None:
    (root / "results/headline.md").write_text(_headline_table(root), encoding="utf-8")


# the 512 table's rows, question-agnostic methods first (names as the grid's cells, less "-M{M}-doc512")
TABLE_512 = "results/documents-512-all"
TABLE_512_ORDER = (
    "full", "none", "prefix", "suffix", "random", "perplexity", "llmlingua", "streaming", "knorm", "tova", "kvzip",
    "expected_attention", "gist_kv-step0", "selector", "selector-pool5", "extractive", "snapkv",
)  # fmt: skip
TABLE_512_BUDGETS = (32, 64, 128)


def _table_512(root: Path) -> str:
    """Every cell of the 512 grid folder, a row per method and reader, a column pair per M: F1 [95% CI] and
    the paired difference from prefix truncation at that M, read by the same reader."""
    import json
    import re

    from compressions.evaluation.intervals import compare_runs

    cells = {}
    for metrics in sorted((root / TABLE_512).glob("*/metrics.json")):
        m = json.loads(metrics.read_text(encoding="utf-8"))
        name = re.sub(r"-M\d+", "", metrics.parent.name).removesuffix("-reader").removesuffix("-doc512")
        cells[(name, m["reader"] is not None, m.get("budget"))] = (metrics.parent, m)
    order = {name: i for i, name in enumerate(TABLE_512_ORDER)}
    rows = sorted({(reader, name) for name, reader, _ in cells}, key=lambda r: (r[0], order.get(r[1], len(order)), r[1]))
    head = " | ".join(f"M = {b}: F1 [95% CI] | minus prefix" for b in TABLE_512_BUDGETS)
    lines = [f"| reader | method | reads the question | {head} |", "|---|---|---|" + "---|---|" * len(TABLE_512_BUDGETS)]
    for reader, name in rows:
        found = [cells.get((name, reader, b)) for b in (None, *TABLE_512_BUDGETS)]
        aware = next(c[1] for c in found if c)["question_aware"]
        columns = []
        for budget in TABLE_512_BUDGETS:
            cell = cells.get((name, reader, budget)) or found[0]  # a row without M (full, none) fills every column
            if cell is None:
                columns += ["not run", ""]
                continue
            folder, m = cell
            low, high = m["f1_ci95"]
            paired = ""
            prefix = cells.get(("prefix", reader, budget))
            if prefix and name != "prefix":
                d = compare_runs(folder, prefix[0])["f1"]
                paired = f"{d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}]"
            columns += [f"{m['f1']:.1f} [{low:.1f}, {high:.1f}]", paired]
        kind = "-" if found[0] else "yes" if aware else "no"
        lines.append(f"| {'SQuAD reader' if reader else 'base'} | `{name}` | {kind} | {' | '.join(columns)} |")
    return "\n".join(lines) + "\n"


def _write_table_512(root: Path) -> None:
    (root / TABLE_512 / "table.md").write_text(_table_512(root), encoding="utf-8")


class Generated(NamedTuple):
    command: str  # the command that writes the file from committed results
    compute: Callable[[Path], str]  # root -> the file's text, computed in memory
    write: Callable[[Path], None]  # root -> writes the file (and its siblings) as the command does


GENERATED = {
    "results/gist-dose/dose/dose.md": Generated("compressions gist dose results/gist-dose", _dose_table, _write_dose),
    "results/headline.md": Generated("python scripts/docs_tables.py", _headline_table, _write_headline),
    f"{TABLE_512}/table.md": Generated("python scripts/docs_tables.py", _table_512, _write_table_512),
    **{
        f"{folder}/results.md": Generated(f"compressions report {folder}", _grid_table(folder), _write_grid_report(folder))
        for folder in ("results/documents-512", "results/documents-512-all", "results/long-inputs")
    },
}


class DocsTableError(Exception):
    """A marker without its end, or a block naming a file that does not exist."""


def default_pages(root: Path | None = None) -> list[Path]:
    root = root or ROOT
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def block_text(path: str, root: Path) -> str:
    """What belongs between the markers of `path`: a blank line, the file's text, a blank line."""
    source = root / path
    if not source.is_file():
        raise DocsTableError(f"the block <!-- table: {path} --> names a file that does not exist")
    return "\n" + source.read_text(encoding="utf-8").strip("\n") + "\n\n"


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def blocks(page: Path) -> list[tuple[str, int, str]]:
    """(path, line, body) of every block of `page`; an opening marker without its end is an error."""
    text = page.read_text(encoding="utf-8")
    found = [(m.group("path"), _line(text, m.start()), m.group("body")) for m in BLOCK.finditer(text)]
    if len(OPENING.findall(text)) != len(found):
        closed = {line for _, line, _ in found}
        for m in OPENING.finditer(text):
            if _line(text, m.start()) not in closed:
                raise DocsTableError(f"{page}:{_line(text, m.start())}: <!-- table: {m.group(1)} --> has no <!-- /table -->")
    return found


def rewrite(page: Path, root: Path | None = None) -> bool:
    """Write every block of `page` from its file (paths relative to `root`); True when the page changed."""
    root = root or ROOT
    blocks(page)  # unclosed markers are errors before anything is written
    text = page.read_text(encoding="utf-8")
    new = BLOCK.sub(lambda m: f"<!-- table: {m.group('path')} -->\n{block_text(m.group('path'), root)}<!-- /table -->", text)
    if new != text:
        page.write_text(new, encoding="utf-8")
    return new != text


def _name(page: Path, root: Path) -> str:
    try:
        return str(page.relative_to(root))
    except ValueError:
        return str(page)


def check(pages: list[Path], root: Path | None = None, generated: bool = True) -> list[str]:
    """One line per disagreement: a block that differs from its file, and (with `generated`) a generated
    file that differs from what its command computes from the committed results."""
    root = root or ROOT
    problems = []
    paths = set()
    for page in pages:
        for path, line, body in blocks(page):
            paths.add(path)
            if body != block_text(path, root):
                problems.append(
                    f"{_name(page, root)}:{line}: the block of {path} differs from that file "
                    f"(python scripts/docs_tables.py rewrites it)"
                )
    for path in sorted(paths & GENERATED.keys()) if generated else ():
        if (root / path).read_text(encoding="utf-8") != GENERATED[path].compute(root):
            problems.append(
                f"{path} differs from what `{GENERATED[path].command}` computes from the committed "
                f"results (run that command, then python scripts/docs_tables.py)"
            )
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: README.md and docs/*.md)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming each block that disagrees")
    parser.add_argument("--no-generate", action="store_true", help="leave generated files alone (no recomputation from results/)")
    args = parser.parse_args(argv)
    pages = args.pages or default_pages()
    try:
        if args.check:
            problems = check(pages, generated=not args.no_generate)
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        used = {path for page in pages for path, _, _ in blocks(page)}
        for path in sorted(used & GENERATED.keys()) if not args.no_generate else ():
            GENERATED[path].write(ROOT)
            print(f"regenerated {path} ({GENERATED[path].command})")
        for page in pages:
            if rewrite(page):
                print(f"rewrote {_name(page, ROOT)}")
    except DocsTableError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
