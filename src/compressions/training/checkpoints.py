"""Training-state checkpoints that survive a kill -9 at any moment.

A checkpoint is `<folder>/step-00000010/`: Accelerate's `save_state` (trainable module, optimizer,
scheduler, RNG states, registered objects such as a stateful loss) plus `position.json` (step, the
micro-batches already read in the current epoch, the log history, the train config) and
`data_generator.pt` (the shuffling generator as it was when that epoch began). It is written under a
hidden temporary name unique to the run (`.step-<step>.<pid>.tmp`) and renamed, so a folder named
`step-*` is always complete; older ones, and temporary folders of runs no longer alive, are removed
after the rename.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list

from compressions.errors import CompressionsError
from compressions.training.config import TrainConfig

POSITION_FILE = "position.json"
GENERATOR_FILE = "data_generator.pt"
# Fields that may change between a run and its resumption without changing the result.
RESUMABLE_CHANGES = ("checkpoint_every", "log_every")


class CheckpointMismatchError(CompressionsError):
    pass


def latest_checkpoint(folder: str | Path) -> Path | None:
    steps = sorted(Path(folder).glob("step-*")) if Path(folder).is_dir() else []
    return steps[-1] if steps else None


def _running(pid: str) -> bool:
    """Whether the process `pid` (as written in a temp folder's name) still runs."""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, under another user
        return True
    return True


def _comparable(config: TrainConfig) -> dict:
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE_CHANGES}


def save_checkpoint(
    accelerator: Accelerator, folder: Path, step: int, epoch_batches: int, epoch_generator: torch.Tensor, history: list[dict], config: TrainConfig
) -> Path:
    """Write step `step` atomically (every process calls this) and drop older checkpoints; returns its path."""
    final = folder / f"step-{step:08d}"
    name = [f".step-{step:08d}.{os.getpid()}.tmp"]  # unique per run: two runs never write into one temp folder
    broadcast_object_list(name)  # every process writes into rank 0's
    tmp = folder / name[0]
    if accelerator.is_main_process:
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        position = {"step": step, "epoch_batches": epoch_batches, "history": history, "train_config": _comparable(config)}
        (tmp / POSITION_FILE).write_text(json.dumps(position), encoding="utf-8")
        torch.save(epoch_generator, tmp / GENERATOR_FILE)
        tmp.rename(final)
        for old in folder.glob("step-*"):
            if old != final:
                shutil.rmtree(old)
        for left in folder.glob(".step-*.tmp"):
            if not _running(left.name.split(".")[-2]):  # left by a save that was killed
                shutil.rmtree(left, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path, config: TrainConfig) -> tuple[dict, torch.Tensor]:
    """Restore the prepared objects' states from `path`; returns (position, epoch_generator_state)."""
    position = json.loads((path / POSITION_FILE).read_text(encoding="utf-8"))
    if position["train_config"] != _comparable(config):
        changed = sorted(k for k, v in _comparable(config).items() if position["train_config"].get(k) != v)
        raise CheckpointMismatchError(
            f"checkpoint {path} was written with other train settings ({', '.join(changed)}); remove it or change the run folder"
        )
    accelerator.load_state(str(path))
    return position, torch.load(path / GENERATOR_FILE)
