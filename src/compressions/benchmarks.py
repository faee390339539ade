"""What the scripts in `benchmarks/` share: their common options, the Alpaca+ and SQuAD examples (or synthetic
ones when the data is absent), the gist model they measure, and the printed table + JSON they leave."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable

import torch
from transformers import PreTrainedModel

from compressions.data.alpaca import AlpacaExample, load_alpaca
from compressions.data.squad import SquadExample, load_squad
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.errors import DataError
from compressions.evaluation.efficiency import count_flops, median_seconds, peak_memory_bytes
from compressions.gist.tokens import add_gist_token
from compressions.models import load_model
from compressions.models.loading import DEFAULT_MODEL, DTYPES
from compressions.store.report import markdown_table
from compressions.store.run_folder import atomic_write_json, environment
from compressions.store.saved import gist_settings, model_dir

log = logging.getLogger(__name__)
# Columns of a cost and its ratios to the full prompt and to instruction caching (see `add_ratios`).
COST_COLUMNS = (
    ("gflops", "GFLOPs", "{:.3f}"),
    ("flops_vs_full", "FLOPs / full", "{:.3f}"),
    ("flops_vs_instruction", "FLOPs / instr.", "{:.3f}"),
    ("ms", "ms", "{:.2f}"),
    ("time_vs_full", "time / full", "{:.3f}"),
    ("time_vs_instruction", "time / instr.", "{:.3f}"),
    ("peak_mib", "peak MiB", "{:.1f}"),
)


def common_parser(description: str, n: int, out: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="base model: alias, local dir or hub id")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--n", type=int, default=n, help="examples measured")
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds of timed runs per measurement")
    parser.add_argument("--out", default=out, help="JSON written with the table")
    return parser


def add_alpaca_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--split", default="alpaca_plus_validation_unseen", help="Alpaca-format file or short name")
    parser.add_argument("--data-dir", default=None, help="default: $COMPRESSIONS_DATA_DIR")
    parser.add_argument("--gist-model", default=None, help="a trained gist model (`gist train` run folder or model dir)")
    parser.add_argument("--num-gist", type=int, default=1, help="K, when no --gist-model is given")
    parser.add_argument("--longest", action="store_true", help="the N examples with the longest instructions, not the first N")


def examples_or_synthetic(load: Callable[[], list], synthetic: Callable[[int], list], n: int, what: str) -> tuple[list, str]:
    """(the first n examples of `load()`, where they came from); `synthetic(n)` when the data is not found."""
    try:
        return load()[:n], what
    except DataError as err:
        log.warning("%s: using %s instead", err, synthetic.__name__)
        return synthetic(n), f"{synthetic.__name__} ({what} not found)"


def alpaca_examples(split: str, data_dir: str | None, n: int, longest: bool = False) -> tuple[list[AlpacaExample], str]:
    """The first n examples of a split, or with `longest` the n with the longest instructions (in characters;
    the Gist paper measured efficiency on its Human split, whose instructions are longer than Alpaca+'s)."""
    def load() -> list[AlpacaExample]:
        examples = load_alpaca(split, data_dir)
        return sorted(examples, key=lambda e: -len(e.instruction)) if longest else examples

    examples, source = examples_or_synthetic(load, synthetic_alpaca, n, split)
    return examples, f"{source}, {'the longest instructions' if longest else 'first'} {len(examples)} examples"


def squad_validation(data_dir: str | None, n: int) -> tuple[list[SquadExample], str]:
    """The first n questions of SQuAD's validation split (dev-A articles 21-24), as the harness reads it."""
    return examples_or_synthetic(lambda: load_squad("squad", "validation", data_dir), synthetic_squad, n, "squad validation")


def gist_setup(args: argparse.Namespace):
    """(model, tokenizer, K, what the model is, examples, where they came from). The model is the trained
    gist model, or the base model with an untrained <GIST> token (fine for FLOPs and time, not outputs)."""
    if args.gist_model:
        settings = gist_settings(args.gist_model)
        if settings is None:
            raise DataError(f"{args.gist_model}: no gist_config.json, not a gist model")
        if settings["prompt_format"] != "plain":
            raise DataError(f"{args.gist_model}: the benchmarks read the plain prompt format, not {settings['prompt_format']}")
        model, tokenizer = load_model(model_dir(args.gist_model), args.dtype, args.device)
        num_gist, what = settings["num_gist"], f"trained gist model {args.gist_model}"
    else:
        model, tokenizer = load_model(args.model, args.dtype, args.device)
        add_gist_token(model, tokenizer)
        num_gist, what = args.num_gist, f"{args.model} + untrained <GIST> (add_gist_token)"
    examples, source = alpaca_examples(args.split, args.data_dir, args.n, getattr(args, "longest", False))
    return model, tokenizer, num_gist, what, examples, source


def measure_call(model: PreTrainedModel, fn, min_run_time: float) -> dict[str, float]:
    """GFLOPs, median milliseconds and peak MiB of `fn()`."""
    return {
        "gflops": count_flops(model, fn) / 1e9,
        "ms": median_seconds(fn, min_run_time) * 1e3,
        "peak_mib": peak_memory_bytes(fn, model.device)[0] / 2**20,
    }


def accumulate(totals: dict[str, dict[str, float]], key: str, cost: dict[str, float]) -> None:
    """Add `cost` to `totals[key]`: GFLOPs and ms summed, peak memory the largest."""
    total = totals.setdefault(key, {"gflops": 0.0, "ms": 0.0, "peak_mib": 0.0})
    total["gflops"] += cost["gflops"]
    total["ms"] += cost["ms"]
    total["peak_mib"] = max(total["peak_mib"], cost["peak_mib"])


def add_ratios(row: dict, full: dict, instruction: dict) -> None:
    for name, other in (("full", full), ("instruction", instruction)):
        row[f"flops_vs_{name}"] = row["gflops"] / other["gflops"]
        row[f"time_vs_{name}"] = row["ms"] / other["ms"]


def cost_facts(device: str) -> dict[str, str]:
    """How `measure_call` measures, for the facts under a table of its costs."""
    return {
        "FLOPs": "torch.utils.flop_counter with eager attention; time: torch.utils.benchmark median, per example",
        "peak memory": peak_memory_bytes(lambda: None, device)[1],
    }


def report(out: str, title: str, rows: list[dict], columns, facts: dict, args: argparse.Namespace) -> str:
    """Print the table and the facts under it; write both, the arguments and the environment to `out`."""
    facts = facts | {"device / dtype / threads": f"{args.device} / {args.dtype} / {torch.get_num_threads()}"}
    table = markdown_table(rows, columns)
    lines = [title, "", table] + [f"- {key}: {value}" for key, value in facts.items()]
    print("\n".join(lines))
    payload = {"args": vars(args), "facts": facts, "rows": rows, "environment": environment()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out), payload)
    print(f"wrote {out}")
    return table
