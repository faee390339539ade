"""End to end: instruction + input -> a fixed number of greedy tokens (default 64), per Alpaca+ example, from
the full prompt, from a gist cache and from a cached instruction, with the one-off cost of making the cache
(gist: `compress`; instruction caching: prefilling the instruction) amortised over R uses.

Every path decodes with the same `Prefill.generate` (exactly --new-tokens tokens, no early EOS), so the
paths differ only in what they read. Per use at R reuses: cost = cache cost / R + generation cost.

    PYTHONPATH=src python benchmarks/gist_end_to_end.py --n 3
"""

from __future__ import annotations

import argparse
import sys

from compressions.benchmarks import (
    COST_COLUMNS,
    accumulate,
    add_alpaca_args,
    add_ratios,
    common_parser,
    cost_facts,
    gist_setup,
    measure_call,
    report,
)
from compressions.evaluation.efficiency import amortised, compression_ratio
from compressions.gist.cache import compress
from compressions.gist.data import instruction_lengths, prompt_ids
from compressions.gist.prefill import full_prefill, gist_prefill, instruction_prefill
from compressions.models.generation import length_batches

REUSES = (1, 10, 100)
COLUMNS = (("batch", "batch", "{}"), ("path", "path", "{}"), ("reuses", "R", "{}"), *COST_COLUMNS)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(__doc__.splitlines()[0], n=3, out="runs/benchmarks/gist_end_to_end.json")
    add_alpaca_args(parser)
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per example")
    parser.add_argument("--batch-size", type=int, default=1, help="examples per batch (length-grouped)")
    return parser


def costs(model, tokenizer, examples, num_gist: int, args) -> dict[str, dict[str, float]]:
    """Per-example sums of the cache and generation costs of each path ("<path>:cache", "<path>:use")."""
    totals: dict[str, dict[str, float]] = {}
    pad = tokenizer.pad_token_id
    lengths = [len(prompt_ids(tokenizer, e, 0, None, "plain")) for e in examples]
    for rows in length_batches(lengths, args.batch_size):
        chunk = [examples[i] for i in rows]
        instructions, inputs = [e.instruction for e in chunk], [e.input for e in chunk]
        gist_cache = compress(model, tokenizer, instructions, num_gist, batch_size=len(chunk))
        calls = {
            "gist:cache": lambda: compress(model, tokenizer, instructions, num_gist, batch_size=len(chunk)),
            "instruction:cache": lambda: instruction_prefill(model, tokenizer, chunk),
        }
        uses = {
            "full": full_prefill(model, tokenizer, chunk),
            "gist": gist_prefill(model, tokenizer, gist_cache, inputs),
            "instruction": instruction_prefill(model, tokenizer, chunk),
        }
        calls |= {f"{name}:use": (lambda p=path: p.generate(model, args.new_tokens, pad)) for name, path in uses.items()}
        for key, fn in calls.items():
            accumulate(totals, key, measure_call(model, fn, args.min_run_time))
    return totals


def table_rows(totals: dict[str, dict[str, float]], n: int, batch: int) -> list[dict]:
    full = totals["full:use"]
    rows = [{"batch": batch, "path": "full", "reuses": "-", "gflops": full["gflops"] / n, "ms": full["ms"] / n,
             "peak_mib": full["peak_mib"]}]  # fmt: skip
    for reuses in REUSES:
        for name in ("instruction", "gist"):
            cache, use = totals[f"{name}:cache"], totals[f"{name}:use"]
            rows.append({
                "batch": batch, "path": name, "reuses": reuses,
                "gflops": amortised(cache["gflops"], use["gflops"], reuses) / n,
                "ms": amortised(cache["ms"], use["ms"], reuses) / n,
                "peak_mib": max(cache["peak_mib"], use["peak_mib"]),
            })  # fmt: skip
    for row in rows:
        same_r = 1 if row["reuses"] == "-" else row["reuses"]
        instruction = next(r for r in rows if r["path"] == "instruction" and r["reuses"] == same_r)
        add_ratios(row, rows[0], instruction)
    return rows


def main(args: argparse.Namespace) -> list[dict]:
    model, tokenizer, num_gist, what, examples, source = gist_setup(args)
    rows = table_rows(costs(model, tokenizer, examples, num_gist, args), len(examples), args.batch_size)
    instruction_tokens = instruction_lengths(tokenizer, examples)
    facts = {
        "model": what, "data": source, "K": num_gist,
        "new tokens per example": args.new_tokens,
        "compression ratio (instruction tokens / K, mean)": round(compression_ratio(instruction_tokens, num_gist), 2),
        "per use": "cache cost / R + generation; ratios to instruction caching at the same R",
        **cost_facts(args.device),
    }  # fmt: skip
    report(args.out, f"Instruction + input -> {args.new_tokens} tokens (per example, {len(examples)} examples)", rows, COLUMNS, facts, args)
    return rows


if __name__ == "__main__":
    main(build_parser().parse_args(sys.argv[1:]))
