"""`compressions train reader`: LoRA SQuAD reader on the target model (reader (b) of every table)."""

from __future__ import annotations

import argparse


def run_train_reader(args: argparse.Namespace) -> None:
    from compressions.cli.flags import config_overrides
    from compressions.config import load_config
    from compressions.reader.config import ReaderConfig
    from compressions.reader.train import train_reader

    config = load_config(ReaderConfig, args.config, config_overrides(args))
    history = train_reader(config)
    print(f"reader: loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f} in {len(history)} steps; saved in {config.out}")
    print(f"use it with: compressions eval squad --reader {config.out} ...")


def register(groups: dict) -> None:
    from compressions.cli.flags import Flag, add_config_flags
    from compressions.reader.config import ReaderConfig

    reader = groups["train"].add_parser("reader", help="fine-tune a LoRA SQuAD reader (full contexts, answer-only loss)")
    reader.add_argument("--config", help="YAML config file (configs/reader/...)")
    add_config_flags(reader, ReaderConfig, ["model", "data", "data_dir", "limit", "documents", Flag("train.max_steps", help="optimizer steps"), "out"])
    reader.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. lora.r=16 train.batch_size=16")
    reader.set_defaults(func=run_train_reader)
