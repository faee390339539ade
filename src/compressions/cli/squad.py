"""`compressions eval squad` and `compressions baselines squad`: SQuAD EM/F1 of context methods.

Options map onto SquadEvalConfig; `--config FILE` loads YAML first, and trailing `key=value` words
override any field (e.g. `prompt.shots=2`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    """The SquadEvalConfig flags shared by `eval squad` and `baselines squad` (help from the config's fields)."""
    from compressions.cli.flags import Flag, add_config_flags
    from compressions.data.prompts import FORMATS
    from compressions.data.squad import SPLITS
    from compressions.evaluation.squad_eval import SquadEvalConfig
    from compressions.models.loading import DTYPES

    parser.add_argument("--config", help="YAML config file (configs/eval/...)")
    add_config_flags(parser, SquadEvalConfig, [
        "model", Flag("dtype", choices=DTYPES), "device", "data", "data_dir",
        Flag("split", choices=SPLITS), "limit", "documents", "distractors", "needle", "batch_size", "max_new_tokens",
        Flag("prompt.format", "prompt-format", choices=FORMATS), Flag("prompt.shots", "shots"), "reader",
        "decoder",
    ])  # fmt: skip
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _load_eval_config(args: argparse.Namespace, options: list[str] = ()):
    from compressions.cli.flags import config_overrides
    from compressions.config import load_config
    from compressions.evaluation.squad_eval import SquadEvalConfig

    return load_config(SquadEvalConfig, args.config, config_overrides(args) + [f"method_options.{o}" for o in options])


def _method_options(words: list[str], methods: list[str]) -> dict[str, list[str]]:
    """`METHOD.key=value` words of the grid -> {method: ["key=value", ...]}."""
    from compressions.errors import ConfigError

    options: dict[str, list[str]] = {m: [] for m in methods}
    for word in words:
        method, _, option = word.partition(".")
        if method not in options or "=" not in option:
            raise ConfigError(f"--method-option {word!r}: expected METHOD.key=value with METHOD in {', '.join(methods)}")
        options[method].append(option)
    return options


def run_eval_squad(args: argparse.Namespace) -> None:
    from compressions.experiments.squad_run import evaluate_squad
    from compressions.store.report import markdown_table

    config = _load_eval_config(args, args.method_option)
    metrics = evaluate_squad(config)
    print(markdown_table([metrics]))
    print(f"run folder: {config.out or f'runs/eval/{config.run_name}'}")


def run_baselines_squad(args: argparse.Namespace) -> None:
    """A grid of squad cells (methods x budgets, a group per method with its options), run and reported
    by the same code as `compressions grid`: finished cells of an earlier run are skipped."""
    import dataclasses

    from compressions.errors import CompressionsError
    from compressions.experiments.grid import CellGroup, GridConfig, run_grid
    from compressions.experiments.grid_report import write_report
    from compressions.methods import check_method, takes_budget

    options = _method_options(args.method_option, args.methods)
    groups = []
    for method in args.methods:
        budgets = args.budgets if takes_budget(method) else [None]
        for budget in budgets:  # fail now, not hours into the grid
            check_method(method, budget)
        # the flags, the YAML and this method's options, read and checked once; each cell sets its budget
        config = dataclasses.asdict(_load_eval_config(args, options[method]))
        base = {k: v for k, v in config.items() if k not in ("budget", "out")} | {"method": method}
        groups.append(CellGroup(kind="squad", base=base, axes={"budget": budgets} if takes_budget(method) else {}))
    out = Path(args.out)
    summary = run_grid(GridConfig(groups=groups, out=str(out)), out)
    if summary["finished"] or summary["skipped"]:
        print(write_report(out))
        print(f"results: {out / 'results.md'}")
    if summary["failed"]:
        raise CompressionsError(f"cells failed: {', '.join(summary['failed'])} (see their error.json)")


def register(groups: dict) -> None:
    from compressions.cli.flags import Flag, add_config_flags
    from compressions.evaluation.squad_eval import SquadEvalConfig

    squad = groups["eval"].add_parser("squad", help="SQuAD EM/F1 of one method at one budget")
    add_eval_options(squad)
    add_config_flags(squad, SquadEvalConfig, [
        "method", "checkpoint", "budget", Flag("out", help="run folder (default runs/eval/<method>[-M<budget>])"),
    ])  # fmt: skip
    squad.add_argument(
        "--method-option", action="append", default=[], metavar="KEY=VALUE", help="a method option (repeatable), e.g. ranker=embedding"
    )
    squad.set_defaults(func=run_eval_squad)

    compare = groups["eval"].add_parser("compare", help="F1/EM of run A minus run B on the same questions, with a paired 95%% interval")
    compare.add_argument("run_a", help="an `eval squad` run folder")
    compare.add_argument("run_b", help="another, on the same questions")
    compare.set_defaults(func=run_compare)

    table = groups["eval"].add_parser("table", help="F1/EM with intervals of finished runs, with their training summaries")
    table.add_argument("runs", nargs="+", help="`eval squad` run folders (a learned one also shows its training run)")
    table.add_argument("--against", help="a run on the same questions: each row's paired F1 difference with it")
    table.add_argument("--out", help="also write the rows here as JSON")
    table.set_defaults(func=run_table)

    grid = groups["baselines"].add_parser("squad", help="SQuAD table of methods x budgets")
    add_eval_options(grid)
    grid.add_argument("--methods", nargs="+", default=["full", "none"])
    grid.add_argument("--budgets", nargs="+", type=int, default=[32, 64, 128])
    grid.add_argument("--out", default="runs/baselines/squad", help="folder for the runs and results.md")
    grid.add_argument(
        "--method-option", action="append", default=[], metavar="METHOD.KEY=VALUE", help="an option of one method (repeatable), e.g. random.seed=1"
    )
    grid.set_defaults(func=run_baselines_squad)


def run_table(args: argparse.Namespace) -> None:
    from compressions.errors import ConfigError
    from compressions.experiments.learned_table import COLUMNS, learned_table
    from compressions.store.report import markdown_table
    from compressions.store.run_folder import atomic_write_json

    rows = learned_table(args.runs, args.against)
    print(markdown_table(rows, COLUMNS), end="")
    if args.out:
        try:
            atomic_write_json(Path(args.out), rows)
        except OSError as err:  # e.g. a parent that is a file
            raise ConfigError(f"--out {args.out}: cannot write the table there ({type(err).__name__}: {err.strerror or err})") from None


def run_compare(args: argparse.Namespace) -> None:
    from compressions.evaluation.intervals import compare_runs

    out = compare_runs(args.run_a, args.run_b)
    for key in ("f1", "exact_match"):
        d = out[key]
        print(f"{key}: {d['mean']:+.2f} (95% CI {d['low']:+.2f} to {d['high']:+.2f}; A <= B in {100 * d['p_not_above']:.1f}% of resamples), {out['n']} questions")
