"""Where does a method's F1 come from? Each validation question's first reference answer either starts
within the context's first M tokens (what prefix truncation keeps) or after them; this splits the F1 of
finished `eval squad` runs (their per-question scores.json) between the two, with 95% bootstrap intervals.

A compressor that only re-encodes the prefix scores like prefix truncation on both sides; one that carries
the rest of the context scores above prefix on the answers that lie after the first M tokens.

    PYTHONPATH=src python benchmarks/answer_position.py runs/squad/prefix-M32-reader-scores \
        runs/squad/learned-gist_kv-M32-eval --budget 32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compressions.data.documents import pack_documents
from compressions.data.squad import load_squad
from compressions.evaluation.intervals import bootstrap_ci
from compressions.models import DEFAULT_MODEL
from compressions.models.loading import load_tokenizer
from compressions.store.report import markdown_table
from compressions.store.run_folder import atomic_write_json

COLUMNS = (
    ("run", "run", "{}"),
    ("f1_within", "F1, answer in the first M tokens", "{:.1f}"),
    ("ci_within", "95% CI", "{0[0]:.1f}-{0[1]:.1f}"),
    ("f1_after", "F1, answer after them", "{:.1f}"),
    ("ci_after", "95% CI", "{0[0]:.1f}-{0[1]:.1f}"),
    ("n_within", "questions within", "{}"),
    ("n_after", "after", "{}"),
)


def answer_token_start(tokenizer, context: str, answer_start: int) -> int:
    """Index of the context token in which the answer's first character lies."""
    offsets = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True).offset_mapping
    return next((i for i, (_, end) in enumerate(offsets) if end > answer_start), len(offsets))


def split_scores(scores: list[dict], within: dict[str, bool]) -> dict:
    """F1 (x100) and its interval on each side of the cut; `within[id]`: the answer starts before token M."""
    sides = {True: [], False: []}
    for s in scores:
        sides[within[s["id"]]].append(s["f1"])
    out = {}
    for name, side in (("within", sides[True]), ("after", sides[False])):
        out[f"f1_{name}"] = 100 * sum(side) / len(side) if side else float("nan")
        out[f"ci_{name}"] = [100 * x for x in bootstrap_ci(side)] if side else [float("nan")] * 2
        out[f"n_{name}"] = len(side)
    return out


def main(args: argparse.Namespace) -> list[dict]:
    tokenizer = load_tokenizer(args.model)
    examples = load_squad(args.data, "validation", args.data_dir)
    if args.documents:  # the runs read documents: an answer's position is counted from the document's start
        examples = pack_documents(examples, tokenizer, args.documents)[0]
    examples = {e.id: e for e in examples}
    within = {i: answer_token_start(tokenizer, e.context, e.answer_starts[0]) < args.budget for i, e in examples.items()}
    rows = []
    for run in args.runs:
        scores = json.loads((Path(run) / "scores.json").read_text(encoding="utf-8"))
        rows.append({"run": Path(run).name, **split_scores(scores, within)})
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="`eval squad` run folders with scores.json, on the same questions")
    parser.add_argument("--budget", type=int, default=32, help="M: the cut, in context tokens")
    parser.add_argument("--documents", type=int, help="the runs read documents packed to this many tokens (--documents)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="the tokenizer that counts tokens")
    parser.add_argument("--data", default="squad")
    parser.add_argument("--data-dir")
    parser.add_argument("--out", default="runs/benchmarks/answer_position.json")
    args = parser.parse_args()
    unfinished = [run for run in args.runs if not (Path(run) / "scores.json").is_file()]
    if unfinished:  # before the data and tokenizer load
        parser.error(f"not a finished `eval squad` run (no scores.json): {', '.join(unfinished)}")
    rows = main(args)
    print(markdown_table(rows, COLUMNS))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out), {"args": vars(args), "rows": rows})
    print(f"wrote {args.out}")
