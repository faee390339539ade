"""`compressions eval squad` and `compressions baselines squad`: SQuAD EM/F1 of context methods.

Options map onto SquadEvalConfig; `--config FILE` loads YAML first, and trailing `key=value` words
override any field (e.g. `prompt.shots=2`).
"""

from __future__ import annotations

import argparse
import sys

COMMON_EVAL_FLAGS = {
    # flag: config key
    "model": "model",
    "dtype": "dtype",
    "device": "device",
    "data": "data",
    "data_dir": "data_dir",
    "split": "split",
    "limit": "limit",
    "batch_size": "batch_size",
    "max_new_tokens": "max_new_tokens",
    "prompt_format": "prompt.format",
    "shots": "prompt.shots",
}


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file (configs/eval/...)")
    parser.add_argument("--model", help="alias (smollm2-135m, tiny-random-llama), local dir or hub id")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--data", help="SQuAD file, short name in the data dir (squad), or hub id")
    parser.add_argument("--data-dir", help="folder of data files (default: $COMPRESSIONS_DATA_DIR)")
    parser.add_argument("--split", choices=["train", "validation", "all"])
    parser.add_argument("--limit", type=int, help="evaluate the first N questions")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--max-new-tokens", type=int, help="default: answer-length diagnostic (p99)")
    parser.add_argument("--prompt-format", choices=["chat", "completion"])
    parser.add_argument("--shots", type=int, help="solved examples shown before the question")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _overrides(args: argparse.Namespace, extra: dict[str, str] = {}) -> list[str]:
    flags = {**COMMON_EVAL_FLAGS, **extra}
    given = [f"{key}={getattr(args, flag)}" for flag, key in flags.items() if getattr(args, flag, None) is not None]
    return given + list(args.overrides)


def _load_eval_config(args: argparse.Namespace, extra: dict[str, str] = {}):
    from compressions.config import load_config
    from compressions.evaluation.squad_eval import SquadEvalConfig

    return load_config(SquadEvalConfig, args.config, _overrides(args, extra))


def run_eval_squad(args: argparse.Namespace) -> None:
    from compressions.evaluation.squad_eval import evaluate_squad
    from compressions.experiments.report import markdown_table

    config = _load_eval_config(args, {"method": "method", "budget": "budget", "checkpoint": "checkpoint", "out": "out"})
    metrics = evaluate_squad(config)
    print(markdown_table([metrics]))
    print(f"run folder: {config.out or f'runs/eval/{config.run_name}'}")


def run_baselines_squad(args: argparse.Namespace) -> None:
    import dataclasses
    from pathlib import Path

    from compressions.baselines import UNBUDGETED
    from compressions.data.squad import load_squad
    from compressions.evaluation.squad_eval import evaluate_squad
    from compressions.experiments.report import write_results
    from compressions.models import load_model

    base = _load_eval_config(args)
    out = Path(args.out)
    examples = load_squad(base.data, base.split, base.data_dir, base.on_error, base.train_articles)
    train = load_squad(base.data, "train", base.data_dir, base.on_error, base.train_articles)
    model, tokenizer = load_model(base.model, base.dtype, base.device)
    cells = [(m, None) for m in args.methods if m in UNBUDGETED]
    cells += [(m, b) for m in args.methods if m not in UNBUDGETED for b in args.budgets]
    rows = []
    for i, (method, budget) in enumerate(cells, 1):
        config = dataclasses.replace(base, method=method, budget=budget)
        config.out = str(out / config.run_name)
        print(f"[{i}/{len(cells)}] {config.run_name}", file=sys.stderr)
        rows.append(evaluate_squad(config, examples, train, model, tokenizer))
    print(write_results(out, rows))
    print(f"results: {out / 'results.md'}")


def register(groups: dict) -> None:
    squad = groups["eval"].add_parser("squad", help="SQuAD EM/F1 of one method at one budget")
    add_eval_options(squad)
    squad.add_argument("--method", help="full, none, ..., learned (see `compressions baselines squad --help`)")
    squad.add_argument("--checkpoint", help="method learned: a compressor checkpoint folder")
    squad.add_argument("--budget", type=int, help="context budget M in target-model tokens")
    squad.add_argument("--out", help="run folder (default runs/eval/<method>[-M<budget>])")
    squad.set_defaults(func=run_eval_squad)

    grid = groups["baselines"].add_parser("squad", help="SQuAD table of methods x budgets")
    add_eval_options(grid)
    grid.add_argument("--methods", nargs="+", default=["full", "none"])
    grid.add_argument("--budgets", nargs="+", type=int, default=[32, 64, 128])
    grid.add_argument("--out", default="runs/baselines/squad", help="folder for the runs and results.md")
    grid.set_defaults(func=run_baselines_squad)
