"""A small resumable training of the tiny model, run as a subprocess by test_resume.py.

Usage: python tests/resume_job.py OUT [SECONDS_PER_STEP]. Writes OUT/train_state/ (checkpoints),
OUT/log.jsonl, and at the end OUT/params.pt and OUT/history.json.
"""

import json
import sys
import time
from pathlib import Path

import torch

from compressions.models.loading import load_model
from compressions.training.config import TrainConfig
from compressions.training.loop import train


class ShuffledLoss:
    """A loss with its own random generator (like scheduled sampling), to check it is checkpointed."""

    def __init__(self):
        self.generator = torch.Generator().manual_seed(1)

    def __call__(self, module, batch):
        ids = batch["input_ids"]
        noise = torch.randint(3, 200, ids.shape, generator=self.generator)
        ids = torch.where(torch.rand(ids.shape, generator=self.generator) < 0.1, noise, ids)
        return module(input_ids=ids, labels=ids).loss, {}

    def state_dict(self):
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["generator"])


def main(out: Path, seconds_per_step: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(3, 200, (12,), generator=g) for _ in range(18)]  # 9 micro-batches: an epoch is 4 steps, the one left over is skipped
    model, _ = load_model("tiny-random-llama")
    config = TrainConfig(learning_rate=3e-3, max_steps=12, batch_size=4, micro_batch_size=2, warmup_ratio=0.2, checkpoint_every=2)
    history = train(
        model,
        [{"params": model.parameters()}],
        ShuffledLoss(),
        data,
        lambda rows: {"input_ids": torch.stack(rows)},
        config,
        out / "log.jsonl",
        progress=False,
        on_step=lambda step, row: time.sleep(seconds_per_step),
        checkpoint_dir=out / "train_state",
    )
    torch.save(model.state_dict(), out / "params.pt")
    (out / "history.json").write_text(json.dumps(history))


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0)
