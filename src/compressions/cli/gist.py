"""`compressions gist train`, `gist eval` and `gist dose`.

Flags map onto GistConfig / GistEvalConfig fields; `--config FILE` loads YAML first (configs/gist/),
and trailing `key=value` words override any field (e.g. `train.learning_rate=1e-4`).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _overrides(args: argparse.Namespace) -> list[str]:
    from compressions.cli.flags import config_overrides

    splits = [f"splits=[{','.join(args.splits)}]"] if getattr(args, "splits", None) else []
    return splits + config_overrides(args)


def run_gist_train(args: argparse.Namespace) -> None:
    from compressions.config import load_config
    from compressions.gist.config import GistConfig
    from compressions.gist.train import train_gist

    config = load_config(GistConfig, args.config, _overrides(args))
    summary = train_gist(config)
    print(f"{summary['run_name']}: {summary['steps']} steps on {summary['examples']} examples in "
          f"{summary['train_seconds']:.0f} s, final loss {summary['final_loss']:.3f}")  # fmt: skip
    print(f"model: {summary['model_dir']}")


def run_gist_eval(args: argparse.Namespace) -> None:
    from compressions.config import load_config
    from compressions.gist.evaluate import GistEvalConfig, evaluate_gist
    from compressions.store.report import markdown_table

    config = load_config(GistEvalConfig, args.config, _overrides(args))
    metrics = evaluate_gist(config)
    retention = {name: (metrics.pop(name, {}), metrics.pop(f"{name}_ci95", {})) for name in ("gist_retention", "loss_retention")}
    rows = [{"model": name, "split": split, **scores} for name, by_split in metrics.items() for split, scores in by_split.items()]
    columns = [("model", "model", "{}"), ("split", "split", "{}"), ("rougeL", "ROUGE-L", "{:.1f}"), ("rougeL_ci95", "95% CI", "{0[0]:.1f}-{0[1]:.1f}"),
               ("rouge1", "ROUGE-1", "{:.1f}"), ("rouge2", "ROUGE-2", "{:.1f}"), ("loss", "loss", "{:.3f}"),
               ("loss_gists_hidden", "loss, gists hidden", "{:.3f}"), ("n", "n", "{}"), ("rouge_n", "ROUGE on", "{}"),
               ("seconds_per_example", "s/example", "{:.2f}")]  # fmt: skip
    print(markdown_table(rows, columns))
    for name, (values, intervals) in retention.items():
        for split, value in values.items():
            ci = intervals.get(split)
            interval = f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})" if ci else ""
            print(f"{name.replace('_', ' ')} on {split}: {'-' if value is None else f'{value:.2f}'}{interval}")
    print(f"run folder: {config.out}")


def run_gist_dose(args: argparse.Namespace) -> None:
    from compressions.gist.dose import write_dose

    out = args.out or str(Path(args.cells[0]) / "dose")
    print(write_dose(args.cells, out), end="")
    print(f"dose.json, dose.md, dose.png in {out}")


def register(groups: dict) -> None:
    from compressions.cli.flags import Flag, add_config_flags
    from compressions.gist.config import MODES, NUM_GIST, PRESETS, GistConfig
    from compressions.gist.evaluate import GistEvalConfig
    from compressions.gist.masks import CONDITIONS

    train = groups["gist"].add_parser("train", help="train a gist model or a control (Mu et al.)")
    train.add_argument("--config", help="YAML config file (configs/gist/...)")
    add_config_flags(train, GistConfig, [
        Flag("preset", choices=PRESETS), Flag("condition", choices=CONDITIONS), Flag("mode", choices=MODES),
        Flag("num_gist", "k", choices=NUM_GIST), "model", "data", "data_dir", "limit", "out",
    ])  # fmt: skip
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    train.set_defaults(func=run_gist_train)

    evaluate = groups["gist"].add_parser("eval", help="ROUGE of gist models, controls and a base model")
    evaluate.add_argument("--config", help="YAML config file (configs/gist/...)")
    add_config_flags(evaluate, GistEvalConfig, ["gist", "pos_control", "neg_control", "base"])
    evaluate.add_argument("--splits", nargs="+", help="Alpaca-format files or short names (default: unseen, seen)")
    add_config_flags(evaluate, GistEvalConfig, ["data_dir", "limit", "max_new_tokens", "batch_size", "out"])
    evaluate.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    evaluate.set_defaults(func=run_gist_eval)

    dose = groups["gist"].add_parser("dose", help="retention against training examples and K, from gist grid cells")
    dose.add_argument("cells", nargs="+", help="gist grid folders or cell folders (each cell: train one condition, then score it)")
    dose.add_argument("--out", help="folder for dose.json, dose.md and dose.png (default: <first folder>/dose)")
    dose.set_defaults(func=run_gist_dose)
