"""`compressions gist train` and `compressions gist eval`.

Flags map onto GistConfig / GistEvalConfig fields; `--config FILE` loads YAML first (configs/gist/),
and trailing `key=value` words override any field (e.g. `train.learning_rate=1e-4`).
"""

from __future__ import annotations

import argparse

TRAIN_FLAGS = {"model": "model", "preset": "preset", "condition": "condition", "mode": "mode", "k": "num_gist",
               "data": "data", "data_dir": "data_dir", "limit": "limit", "out": "out"}  # fmt: skip
EVAL_FLAGS = {"gist": "gist", "pos_control": "pos_control", "neg_control": "neg_control", "base": "base",
              "data_dir": "data_dir", "limit": "limit", "max_new_tokens": "max_new_tokens",
              "batch_size": "batch_size", "out": "out"}  # fmt: skip


def _overrides(args: argparse.Namespace, flags: dict[str, str]) -> list[str]:
    given = [f"{key}={getattr(args, flag)}" for flag, key in flags.items() if getattr(args, flag, None) is not None]
    if getattr(args, "splits", None):
        given.append(f"splits=[{','.join(args.splits)}]")
    return given + list(args.overrides)


def run_gist_train(args: argparse.Namespace) -> None:
    from compressions.config import load_config
    from compressions.gist.config import GistConfig
    from compressions.gist.train import train_gist

    config = load_config(GistConfig, args.config, _overrides(args, TRAIN_FLAGS))
    summary = train_gist(config)
    print(f"{summary['run_name']}: {summary['steps']} steps on {summary['examples']} examples in "
          f"{summary['train_seconds']:.0f} s, final loss {summary['final_loss']:.3f}")  # fmt: skip
    print(f"model: {summary['model_dir']}")


def run_gist_eval(args: argparse.Namespace) -> None:
    from compressions.config import load_config
    from compressions.experiments.report import markdown_table
    from compressions.gist.evaluate import GistEvalConfig, evaluate_gist

    config = load_config(GistEvalConfig, args.config, _overrides(args, EVAL_FLAGS))
    metrics = evaluate_gist(config)
    retention = metrics.pop("gist_retention", {})
    intervals = metrics.pop("gist_retention_ci95", {})
    rows = [{"model": name, "split": split, **scores} for name, by_split in metrics.items() for split, scores in by_split.items()]
    columns = [("model", "model", "{}"), ("split", "split", "{}"), ("rougeL", "ROUGE-L", "{:.1f}"), ("rougeL_ci95", "95% CI", "{0[0]:.1f}-{0[1]:.1f}"),
               ("rouge1", "ROUGE-1", "{:.1f}"), ("rouge2", "ROUGE-2", "{:.1f}"), ("loss", "loss", "{:.3f}"),
               ("loss_gists_hidden", "loss, gists hidden", "{:.3f}"), ("n", "n", "{}"),
               ("seconds_per_example", "s/example", "{:.2f}")]  # fmt: skip
    print(markdown_table(rows, columns))
    for split, value in retention.items():
        ci = intervals.get(split)
        interval = f" (95% CI {ci[0]:.2f} to {ci[1]:.2f})" if ci else ""
        print(f"gist retention on {split}: {'-' if value is None else f'{value:.2f}'}{interval}")
    print(f"run folder: {config.out}")


def register(groups: dict) -> None:
    train = groups["gist"].add_parser("train", help="train a gist model or a control (Mu et al.)")
    train.add_argument("--config", help="YAML config file (configs/gist/...)")
    train.add_argument("--preset", choices=["test", "validate", "full"], help="100 / 2,000 / all training examples")
    train.add_argument("--condition", choices=["gist", "pos_control", "neg_control"])
    train.add_argument("--mode", choices=["full", "lora", "frozen"], help="what trains (default full)")
    train.add_argument("--k", type=int, choices=[1, 2, 5, 10], help="number of gist tokens")
    train.add_argument("--model", help="base model: alias, local dir or hub id")
    train.add_argument("--data", help="Alpaca-format file or short name (default alpaca_plus_train)")
    train.add_argument("--data-dir", help="folder of data files (default: $COMPRESSIONS_DATA_DIR)")
    train.add_argument("--limit", type=int, help="training examples (overrides the preset)")
    train.add_argument("--out", help="run folder (default runs/gist/<condition>-k<K>-<mode>-<preset>)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    train.set_defaults(func=run_gist_train)

    evaluate = groups["gist"].add_parser("eval", help="ROUGE of gist models, controls and a base model")
    evaluate.add_argument("--config", help="YAML config file (configs/gist/...)")
    evaluate.add_argument("--gist", help="gist model (`gist train` run folder or model dir)")
    evaluate.add_argument("--pos-control", help="pos_control model")
    evaluate.add_argument("--neg-control", help="neg_control model")
    evaluate.add_argument("--base", help="untrained model read with the full prompt (e.g. smollm2-135m)")
    evaluate.add_argument("--splits", nargs="+", help="Alpaca-format files or short names (default: unseen, seen)")
    evaluate.add_argument("--data-dir", help="folder of data files (default: $COMPRESSIONS_DATA_DIR)")
    evaluate.add_argument("--limit", type=int, help="first N examples of each split")
    evaluate.add_argument("--max-new-tokens", type=int)
    evaluate.add_argument("--batch-size", type=int)
    evaluate.add_argument("--out", help="run folder (default runs/gist/eval)")
    evaluate.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    evaluate.set_defaults(func=run_gist_eval)
