"""`compressions train compressor`: train a soft-token compressor on SQuAD and evaluate its checkpoint.

Settings come from, in order: the dataclass defaults, `--config FILE`, `--preset`, the flags, then
trailing `key=value` overrides (e.g. `loss.contrastive=0 pipeline.use_lora=true pipeline.lora.r=8`).
"""

from __future__ import annotations

import argparse
import json

COMPRESSOR_FLAGS = {
    # flag: config key
    "arch": "pipeline.arch",
    "budget": "pipeline.budget",
    "model": "pipeline.model",
    "data": "data",
    "data_dir": "data_dir",
    "out": "out",
}


def run_train_compressor(args: argparse.Namespace) -> None:
    from compressions.compressors.train import PRESETS, CompressorTrainConfig, train_compressor
    from compressions.config import load_config

    given = [f"{key}={getattr(args, flag)}" for flag, key in COMPRESSOR_FLAGS.items() if getattr(args, flag) is not None]
    preset = PRESETS[args.preset] if args.preset else []
    config = load_config(CompressorTrainConfig, args.config, [*preset, *given, *args.overrides])
    summary = train_compressor(config)
    print(json.dumps({k: v for k, v in summary.items() if k != "eval"}, indent=2))
    if "eval" in summary:
        print(f"validation F1 {summary['eval']['f1']:.1f} EM {summary['eval']['exact_match']:.1f} (n={summary['eval']['n']})")


def register(groups: dict) -> None:
    from compressions.compressors import ARCHITECTURES
    from compressions.compressors.train import PRESETS

    parser = groups["train"].add_parser("compressor", help="train a soft-token compressor on SQuAD")
    parser.add_argument("--arch", choices=list(ARCHITECTURES), help="compressor architecture")
    parser.add_argument("--budget", type=int, help="M, soft tokens per context")
    parser.add_argument("--preset", choices=list(PRESETS), help="size: test (seconds), quick (a check, under 15 min on 2 CPU cores), validate (one grid cell), full (a GPU)")
    parser.add_argument("--config", help="YAML config file")
    parser.add_argument("--model", help="the LLM that reads the soft tokens (alias, local dir or hub id)")
    parser.add_argument("--data", help="SQuAD file, short name in the data dir (squad), or hub id")
    parser.add_argument("--data-dir", help="folder of data files (default: $COMPRESSIONS_DATA_DIR)")
    parser.add_argument("--out", help="run folder (default runs/compressors/<arch>-M<budget>)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.set_defaults(func=run_train_compressor)
