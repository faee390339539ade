"""`compressions train compressor`: train a soft-token compressor on SQuAD and evaluate its checkpoint.

Settings come from, in order: the dataclass defaults, `--config FILE`, `--preset`, the flags, then
trailing `key=value` overrides (e.g. `loss.contrastive=0 pipeline.use_lora=true pipeline.lora.r=8`).
"""

from __future__ import annotations

import argparse
import json


def run_train_compressor(args: argparse.Namespace) -> None:
    from compressions.cli.flags import config_overrides
    from compressions.compressors.train import PRESETS, CompressorTrainConfig
    from compressions.config import load_config
    from compressions.experiments.compressor_run import train_compressor

    preset = []
    if args.preset:  # the config file may size a preset its own way
        preset = load_config(CompressorTrainConfig, args.config, config_overrides(args)).presets.get(args.preset, PRESETS[args.preset])
    config = load_config(CompressorTrainConfig, args.config, [*preset, *config_overrides(args)])
    summary = train_compressor(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "eval"}, indent=2))
    if "eval" in summary:
        print(f"validation F1 {summary['eval']['f1']:.1f} EM {summary['eval']['exact_match']:.1f} (n={summary['eval']['n']})")


def run_train_selector(args: argparse.Namespace) -> None:
    from compressions.cli.flags import config_overrides
    from compressions.compressors.selector import PRESETS, SelectorConfig, train_selector
    from compressions.config import load_config

    preset = PRESETS[args.preset] if args.preset else []
    config = load_config(SelectorConfig, args.config, [*preset, *config_overrides(args)])
    summary = train_selector(config)
    print(json.dumps(summary, indent=2))
    print(f"saved to {config.out}; score it with: compressions eval squad --method selector --method-option checkpoint={config.out} --budget 32 --documents {config.documents}")


def register(groups: dict) -> None:
    from compressions.cli.flags import Flag, add_config_flags
    from compressions.compressors import ARCHITECTURES
    from compressions.compressors.pretraining import TASKS
    from compressions.compressors.train import PRESETS, CompressorTrainConfig

    parser = groups["train"].add_parser("compressor", help="train a soft-token compressor on SQuAD")
    add_config_flags(parser, CompressorTrainConfig, [Flag("pipeline.arch", choices=ARCHITECTURES), "pipeline.budget"])
    parser.add_argument("--preset", choices=list(PRESETS), help="size: test (seconds), quick (a check, under 15 min on 2 CPU cores), validate (one grid cell), full (a GPU)")
    parser.add_argument("--config", help="YAML config file")
    add_config_flags(parser, CompressorTrainConfig, ["pipeline.model", "documents", "data", "data_dir", "out", Flag("task", choices=("squad", *TASKS))])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(func=run_train_compressor)

    from compressions.compressors.selector import PRESETS as SELECTOR_PRESETS
    from compressions.compressors.selector import SelectorConfig

    parser = groups["train"].add_parser("selector", help="train the learned question-agnostic KV selection (a probe for answer tokens)")
    parser.add_argument("--preset", choices=list(SELECTOR_PRESETS), help="size: test (seconds, a few documents), quick (every train document)")
    parser.add_argument("--config", help="YAML config file")
    add_config_flags(parser, SelectorConfig, ["model", "documents", "data", "data_dir", "out"])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(func=run_train_selector)
