"""The Gist paper's benchmark: one prefill forward of the post-instruction tokens, per Alpaca+ example, with
the full prompt, with the gists' KV, and with the whole instruction's KV cached (ordinary prompt caching).

Compression (prefilling instruction + gists) is done once beforehand and not counted here, as in the paper;
`gist_end_to_end.py` counts it. Rows: per-example FLOPs, median time and peak memory at batch 1 and batched
(length-grouped), with ratios to the full prompt and to instruction caching, measured in this one run.

    PYTHONPATH=src python benchmarks/gist_prefill.py --n 20
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
from compressions.evaluation.efficiency import compression_ratio, kv_bytes
from compressions.gist.cache import compress
from compressions.gist.data import instruction_lengths, prompt_ids
from compressions.gist.prefill import full_prefill, gist_prefill, instruction_prefill
from compressions.models.generation import length_batches

PATHS = ("full", "instruction", "gist")
COLUMNS = (
    ("batch", "batch", "{}"),
    ("path", "prefill with", "{}"),
    ("tokens", "tokens read", "{:.1f}"),
    ("cached_kv_bytes", "cached KV bytes", "{:,.0f}"),
    *COST_COLUMNS,
)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(__doc__.splitlines()[0], n=20, out="runs/benchmarks/gist_prefill.json")
    add_alpaca_args(parser)
    parser.add_argument("--batch-size", type=int, default=8, help="the batched setting (batch 1 is always run)")
    return parser


def measure(model, tokenizer, examples, cache, batch_size: int, args) -> list[dict]:
    """Per-example means of each path, examples in length-grouped batches of `batch_size`."""
    totals: dict[str, dict[str, float]] = {}
    tokens, cached = dict.fromkeys(PATHS, 0), dict.fromkeys(PATHS, 0)
    lengths = [len(prompt_ids(tokenizer, e, 0, None, "plain")) for e in examples]
    for rows in length_batches(lengths, batch_size):
        chunk = [examples[i] for i in rows]
        paths = {
            "full": full_prefill(model, tokenizer, chunk),
            "instruction": instruction_prefill(model, tokenizer, chunk),
            "gist": gist_prefill(model, tokenizer, cache.select(rows), [e.input for e in chunk]),
        }
        for name, path in paths.items():
            accumulate(totals, name, measure_call(model, lambda path=path: path(model), args.min_run_time))
            tokens[name] += int(path.attention_mask[:, -path.input_ids.shape[1] :].sum())
            cached[name] += sum(path.cached_tokens)
    n = len(examples)
    out = [
        {"batch": batch_size, "path": name, "tokens": tokens[name] / n,
         "cached_kv_bytes": kv_bytes(model.config, model.dtype, cached[name]) / n,
         "gflops": totals[name]["gflops"] / n, "ms": totals[name]["ms"] / n, "peak_mib": totals[name]["peak_mib"]}
        for name in PATHS
    ]  # fmt: skip
    for row in out:
        add_ratios(row, out[0], out[1])
    return out


def main(args: argparse.Namespace) -> list[dict]:
    model, tokenizer, num_gist, what, examples, source = gist_setup(args)
    cache = compress(model, tokenizer, [e.instruction for e in examples], num_gist, batch_size=args.batch_size)
    rows = measure(model, tokenizer, examples, cache, 1, args) + measure(model, tokenizer, examples, cache, args.batch_size, args)
    instruction_tokens = instruction_lengths(tokenizer, examples)
    mean_instruction = sum(instruction_tokens) / len(instruction_tokens)
    facts = {
        "model": what, "data": source, "K": num_gist,
        "mean instruction tokens": round(mean_instruction, 1),
        "compression ratio (instruction tokens / K, mean)": round(compression_ratio(instruction_tokens, num_gist), 2),
        "KV bytes per cached prompt: instruction / K gists": (
            f"{kv_bytes(model.config, model.dtype, 1) * mean_instruction:,.0f} / {kv_bytes(model.config, model.dtype, num_gist):,}"
        ),
        **cost_facts(args.device),
    }  # fmt: skip
    report(args.out, f"Prefill of the post-instruction tokens (per example, {len(examples)} examples)", rows, COLUMNS, facts, args)
    return rows


if __name__ == "__main__":
    main(build_parser().parse_args(sys.argv[1:]))
