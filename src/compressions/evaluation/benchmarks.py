"""What the scripts in `benchmarks/` share: their common options, the Alpaca+ examples (or synthetic ones
when the data is absent), the gist model they measure, and the printed table + JSON they leave."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.data.alpaca import AlpacaExample, load_alpaca
from compressions.data.synthetic import synthetic_alpaca
from compressions.errors import DataError
from compressions.evaluation.efficiency import count_flops, median_seconds, peak_memory_bytes
from compressions.experiments.report import markdown_table
from compressions.experiments.run_folder import atomic_write_json, environment
from compressions.gist.evaluate import gist_settings, model_dir
from compressions.gist.tokens import add_gist_token
from compressions.models import load_model
from compressions.models.loading import DEFAULT_MODEL, DTYPES

log = logging.getLogger(__name__)


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


def alpaca_examples(split: str, data_dir: str | None, n: int) -> tuple[list[AlpacaExample], str]:
    """(the first n examples, where they came from); synthetic examples when the split is not found."""
    try:
        return load_alpaca(split, data_dir)[:n], split
    except DataError as err:
        log.warning("%s: using synthetic_alpaca instead", err)
        return synthetic_alpaca(n), f"synthetic_alpaca ({split} not found)"


def gist_model(args: argparse.Namespace) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, int, str, str]:
    """(model, tokenizer, K, prompt format, what it is): the trained gist model, or the base model with
    an untrained <GIST> token (fine for FLOPs and time, meaningless for outputs)."""
    if args.gist_model:
        settings = gist_settings(args.gist_model)
        if settings is None:
            raise DataError(f"{args.gist_model}: no gist_config.json, not a gist model")
        model, tokenizer = load_model(model_dir(args.gist_model), args.dtype, args.device)
        return model, tokenizer, settings["num_gist"], settings["prompt_format"], f"trained gist model {args.gist_model}"
    model, tokenizer = load_model(args.model, args.dtype, args.device)
    add_gist_token(model, tokenizer)
    return model, tokenizer, args.num_gist, "plain", f"{args.model} + untrained <GIST> (add_gist_token)"


def measure_call(model: PreTrainedModel, fn, min_run_time: float) -> dict[str, float]:
    """GFLOPs, median milliseconds and peak MiB of `fn()`."""
    return {
        "gflops": count_flops(model, fn) / 1e9,
        "ms": median_seconds(fn, min_run_time) * 1e3,
        "peak_mib": peak_memory_bytes(fn, model.device)[0] / 2**20,
    }


def report(out: str, title: str, rows: list[dict], columns, facts: dict, args: argparse.Namespace) -> str:
    """Print the table and the facts under it; write both, the arguments and the environment to `out`."""
    table = markdown_table(rows, columns)
    lines = [title, "", table] + [f"- {key}: {value}" for key, value in facts.items()]
    print("\n".join(lines))
    payload = {"args": vars(args), "facts": facts, "rows": rows, "environment": environment()}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out), payload)
    print(f"wrote {out}")
    return table
