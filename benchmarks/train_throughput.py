"""Training throughput of gist training (condition gist, full fine-tune, as `compressions gist train`), on the
same n Alpaca+ train examples at batch 1, in random batches, in length-grouped batches and in sorted batches.

Batches come from the trainer's own `example_loader` (random order, or transformers' LengthGroupedSampler), or
from `length_batches` (sorted by length, then cut: the best grouping), and are collated by the trainer's
`GistCollator` (left padding, one 4D gist mask per example); the loss is the trainer's `gist_loss`. A timed step
is forward + backward + gradient clipping + AdamW step at the gist trainer's learning rate (collation is done
before timing). Every setting starts from the same weights: they are restored from a snapshot after its warm-up
steps and after its timed pass (AdamW keeps the state its warm-up allocated, as in a running training).
tokens/s counts real (non-padding) tokens; padded tokens are what the forwards process (batch x width). The
pass over the n examples is timed once (--min-run-time is not used).

    PYTHONPATH=src python benchmarks/train_throughput.py --n 32
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch
from torch import nn

from compressions.benchmarks import add_alpaca_args, common_parser, gist_setup, report
from compressions.gist.config import GistConfig
from compressions.gist.data import GistCollator
from compressions.gist.train import gist_loss, prepare_training
from compressions.models.generation import length_batches
from compressions.training.loop import example_loader

# random and length-grouped: what the trainer does; sorted: the limit of grouping, which LengthGroupedSampler
# only nears on large sets (below 8 batches of examples its mega-batches are single batches: no grouping).
ORDERS = ("random", "length-grouped", "sorted")
COLUMNS = (
    ("setting", "setting", "{}"),
    ("batch", "batch", "{}"),
    ("steps", "steps", "{}"),
    ("examples", "examples", "{}"),
    ("tokens", "real tokens", "{:,}"),
    ("padded_tokens", "padded tokens", "{:,}"),
    ("padding_factor", "padded / real", "{:.2f}"),
    ("seconds", "s", "{:.1f}"),
    ("tokens_per_s", "real tokens/s", "{:.1f}"),
    ("vs_batch_1", "tokens/s / batch 1", "{:.2f}"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = common_parser(__doc__.splitlines()[0], n=32, out="runs/benchmarks/train_throughput.json")
    add_alpaca_args(parser)
    parser.set_defaults(split="alpaca_plus_train")
    parser.add_argument("--batch-size", type=int, default=8, help="the batched settings (batch 1 is always run)")
    parser.add_argument("--warmup-steps", type=int, default=1, help="untimed steps before each timed pass")
    parser.add_argument("--max-length", type=int, default=GistConfig.max_length, help="tokens per sequence, as gist train")
    return parser


def optimizer_step(module: nn.Module, optimizer: torch.optim.Optimizer, batch: dict, max_grad_norm: float) -> None:
    """One training step as the trainer takes it (without Accelerate, which adds nothing on one device)."""
    loss, _ = gist_loss(module, batch)
    loss.backward()
    if max_grad_norm > 0:
        nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad()


def index_batches(lengths: list[int], batch_size: int, order: str, seed: int) -> list[list[int]]:
    """Example indices per step: the trainer's loader in random order or length-grouped, or fully sorted."""
    if order == "sorted":
        return length_batches(lengths, batch_size)
    grouped = lengths if order == "length-grouped" else None
    generator = torch.Generator().manual_seed(seed)
    return list(example_loader(range(len(lengths)), list, batch_size, generator, grouped, per_step=None))


def measure(
    module: nn.Module, dataset: list[dict], collate: GistCollator, config: GistConfig, steps: list[list[int]], warmup: int
) -> dict:
    """Time one pass of optimizer steps over the examples of `steps`; weights are back at their start afterwards."""
    device = next(module.parameters()).device
    batches = [{k: v.to(device) for k, v in collate([dataset[i] for i in rows]).items()} for rows in steps]
    snapshot = copy.deepcopy(module.state_dict())
    optimizer = torch.optim.AdamW(
        [p for p in module.parameters() if p.requires_grad], lr=config.train.learning_rate, weight_decay=config.train.weight_decay
    )
    module.train()
    for batch in batches[:warmup]:
        optimizer_step(module, optimizer, batch, config.train.max_grad_norm)
    module.load_state_dict(snapshot)
    start = time.perf_counter()
    for batch in batches:
        optimizer_step(module, optimizer, batch, config.train.max_grad_norm)
    seconds = time.perf_counter() - start
    module.load_state_dict(snapshot)
    tokens = sum(len(dataset[i]["input_ids"]) for rows in steps for i in rows)
    padded = sum(batch["input_ids"].numel() for batch in batches)
    return {"batch": max(map(len, steps)), "steps": len(steps), "examples": sum(map(len, steps)), "tokens": tokens,
            "padded_tokens": padded, "padding_factor": padded / tokens, "seconds": seconds,
            "tokens_per_s": tokens / seconds}  # fmt: skip


def main(args: argparse.Namespace) -> list[dict]:
    model, tokenizer, num_gist, what, examples, source = gist_setup(args)
    config = GistConfig(num_gist=num_gist, max_length=args.max_length)  # condition gist, mode full: the defaults
    module, dataset, collate = prepare_training(model, tokenizer, examples, config)
    lengths = [len(r["input_ids"]) for r in dataset]
    rows = []
    for order, batch_size in (("random", 1), *((order, args.batch_size) for order in ORDERS)):
        steps = index_batches(lengths, batch_size, order, config.train.seed)
        rows.append({"setting": order} | measure(module, dataset, collate, config, steps, args.warmup_steps))
    for row in rows:
        row["vs_batch_1"] = row["tokens_per_s"] / rows[0]["tokens_per_s"]
    facts = {
        "model": what, "data": f"{source}, first {len(examples)} examples ({len(dataset)} fit max_length {config.max_length})",
        "K / condition / mode": f"{num_gist} / {config.condition} / {config.mode}",
        "step": f"forward + backward + clip {config.train.max_grad_norm} + AdamW lr {config.train.learning_rate}",
        "warm-up": f"{args.warmup_steps} untimed step(s) per setting; weights restored before and after each timed pass",
        "batches": "random: shuffled DataLoader; length-grouped: transformers LengthGroupedSampler (both the trainer's "
        "example_loader); sorted: length_batches (sorted, then cut)",
    }  # fmt: skip
    report(args.out, f"Gist training throughput ({len(dataset)} examples, one pass each)", rows, COLUMNS, facts, args)
    return rows


if __name__ == "__main__":
    main(build_parser().parse_args(sys.argv[1:]))
