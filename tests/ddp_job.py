"""A short training of the tiny model on any number of processes, launched by test_ddp.py.

Usage: torchrun --standalone --nproc_per_node N tests/ddp_job.py OUT. Trains twice (shuffled, then
length-grouped micro-batches) with a global batch of 4 in micro-batches of 2; the main process writes
OUT/history.json ({run: per-step rows}) and OUT/<run>.pt (final parameters).
"""

import json
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from compressions.models.loading import load_model
from compressions.training.config import TrainConfig
from compressions.training.loop import train


def _lm_loss(module, batch):
    return module(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss, {"tokens": float(batch["input_ids"].numel())}


def main(out: Path) -> None:
    g = torch.Generator().manual_seed(0)
    # example i draws from 2 + 5 i tokens: examples differ in how easy they are, so each step's loss depends on its examples.
    # 17 micro-batches: an epoch is 8 steps and one left over; the sampler groups by length in chunks of 8 examples.
    data = [torch.randint(3, 5 + 5 * i, (12,), generator=g) for i in range(34)]
    # the sampler only orders by these; equal real lengths keep the collate trivial
    lengths = torch.randint(4, 64, (len(data),), generator=g).tolist()
    config = TrainConfig(learning_rate=3e-2, max_steps=10, batch_size=4, micro_batch_size=2, warmup_ratio=0.3, scheduler="linear")
    histories = {}
    for run, kw in {"shuffled": {}, "grouped": {"lengths": lengths}}.items():
        model, _ = load_model("tiny-random-llama")
        collate = lambda rows: {"input_ids": torch.stack(rows)}  # noqa: E731
        histories[run] = train(model, [{"params": model.parameters()}], _lm_loss, data, collate, config, progress=False, **kw)
        if PartialState().is_main_process:
            torch.save(model.state_dict(), out / f"{run}.pt")
    if PartialState().is_main_process:
        (out / "history.json").write_text(json.dumps(histories))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
