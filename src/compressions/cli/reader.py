"""`compressions train reader`: LoRA SQuAD reader on the target model (reader (b) of every table)."""

from __future__ import annotations

import argparse


def run_train_reader(args: argparse.Namespace) -> None:
    from compressions.config import load_config
    from compressions.reader.config import ReaderConfig
    from compressions.reader.train import train_reader

    flags = {"model": "model", "data": "data", "data_dir": "data_dir", "limit": "limit", "max_steps": "train.max_steps", "out": "out"}
    given = [f"{key}={getattr(args, flag)}" for flag, key in flags.items() if getattr(args, flag) is not None]
    config = load_config(ReaderConfig, args.config, given + list(args.overrides))
    history = train_reader(config)
    print(f"reader: loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f} in {len(history)} steps; saved in {config.out}")
    print(f"use it with: compressions eval squad --reader {config.out} ...")


def register(groups: dict) -> None:
    reader = groups["train"].add_parser("reader", help="fine-tune a LoRA SQuAD reader (full contexts, answer-only loss)")
    reader.add_argument("--config", help="YAML config file (configs/reader/...)")
    reader.add_argument("--model", help="alias (smollm2-135m, tiny-random-llama), local dir or hub id")
    reader.add_argument("--data", help="SQuAD file, short name in the data dir (squad), or hub id")
    reader.add_argument("--data-dir", help="folder of data files (default: $COMPRESSIONS_DATA_DIR)")
    reader.add_argument("--limit", type=int, help="train on the first N questions")
    reader.add_argument("--max-steps", type=int, help="optimizer steps (train.max_steps)")
    reader.add_argument("--out", help="run folder for the adapter (default runs/reader)")
    reader.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. lora.r=16 train.batch_size=16")
    reader.set_defaults(func=run_train_reader)
