"""Training-state checkpoints that survive a kill -9 at any moment, and resume without unpickling code.

A checkpoint is `<folder>/step-00000010/`: Accelerate's `save_state` (the module's trainable parameters
only, so a compressor's step does not hold a copy of the frozen LLM; optimizer, scheduler, RNG states; all
read back with `weights_only=True`) plus `position.json` (step, the
micro-batches already read in the current epoch, the log history, the train config),
`data_generator.pt` (the shuffling generator as it was when that epoch began) and `loss_state.pt` (a
stateful loss, e.g. its random generator), both tensors read with `weights_only=True`. Nothing goes
through Accelerate's custom-object pickle, which it loads with `weights_only=False`.

A step is written under a hidden temporary name unique to the run (`.step-<step>.<pid>.tmp`) and
renamed, so a folder named `step-*` is complete when written; the two newest are kept, so that a step
damaged later (a truncated file) falls back to the one before, with a warning, and is renamed
`damaged-step-*`. Temporary folders of runs no longer alive are removed after each save.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, broadcast_object_list
from safetensors.torch import load_file
from torch import nn

from compressions.errors import CompressionsError
from compressions.training.config import TrainConfig

log = logging.getLogger(__name__)

POSITION_FILE = "position.json"
GENERATOR_FILE = "data_generator.pt"
LOSS_STATE_FILE = "loss_state.pt"
KEEP = 2  # the newest step and the one to fall back to
# Fields that may change between a run and its resumption without changing the result.
RESUMABLE_CHANGES = ("checkpoint_every", "log_every")


class CheckpointMismatchError(CompressionsError):
    pass


class Stateful(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def keep_trainable_only(accelerator: Accelerator) -> None:
    """Make `accelerator.save_state` write only the parameters that train, and `load_state` read them
    back strictly (each must be there; the rest of the module keeps its frozen weights)."""

    def save_hook(models: list[nn.Module], weights: list[dict], output_dir: str) -> None:
        if len(weights) == len(models):  # empty under FSDP, which saves through its own path
            for i, model in enumerate(models):
                names = {n for n, p in model.named_parameters() if p.requires_grad}
                weights[i] = {k: v for k, v in weights[i].items() if k in names}

    def load_hook(models: list[nn.Module], input_dir: str) -> None:
        if accelerator.distributed_type != DistributedType.FSDP:
            while models:  # taken off Accelerate's list: it would require every key of the module
                i = len(models) - 1
                _load_trainable(models.pop(), Path(input_dir) / ("model.safetensors" if i == 0 else f"model_{i}.safetensors"))

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _load_trainable(model: nn.Module, path: Path) -> None:
    saved = load_file(path)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    state = model.state_dict()
    missing, foreign = trainable - saved.keys(), saved.keys() - state.keys()
    if missing or foreign:
        raise CompressionsError(f"{path} does not hold this module's trainable parameters (missing {sorted(missing)[:3]}, unknown {sorted(foreign)[:3]})")
    model.load_state_dict({k: saved[k] for k in trainable}, strict=False)  # earlier steps also held frozen weights


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
    accelerator: Accelerator,
    folder: Path,
    step: int,
    epoch_batches: int,
    epoch_generator: torch.Tensor,
    history: list[dict],
    config: TrainConfig,
    loss: Stateful | None = None,
) -> Path:
    """Write step `step` atomically (every process calls this) and drop all but the KEEP newest; returns its path."""
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
        if loss is not None:
            torch.save(loss.state_dict(), tmp / LOSS_STATE_FILE)
        tmp.rename(final)
        for old in sorted(folder.glob("step-*"))[:-KEEP]:
            shutil.rmtree(old)
        for left in folder.glob(".step-*.tmp"):
            if not _running(left.name.split(".")[-2]):  # left by a save that was killed
                shutil.rmtree(left, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path, config: TrainConfig, loss: Stateful | None = None) -> tuple[dict, torch.Tensor]:
    """Restore the prepared objects' states (and `loss`'s) from `path`; returns (position, epoch_generator_state)."""
    position = json.loads((path / POSITION_FILE).read_text(encoding="utf-8"))
    step = position.get("step")
    # the folder's name, the log rows and max_steps all say how far a step is: a position that disagrees
    # would "resume" past the end and mark an unfinished run finished
    if not isinstance(step, int) or path.name != f"step-{step:08d}" or len(position.get("history", ())) != step or step > config.max_steps:
        raise CheckpointMismatchError(
            f"checkpoint {path}: its {POSITION_FILE} says step {step!r}, which is not its folder's step, its {len(position.get('history', ()))} "
            f"logged steps, or within train.max_steps={config.max_steps}; remove the step folder or change the run folder"
        )
    if position["train_config"] != _comparable(config):
        changed = sorted(k for k, v in _comparable(config).items() if position["train_config"].get(k) != v)
        raise CheckpointMismatchError(
            f"checkpoint {path} was written with other train settings ({', '.join(changed)}); remove it or change the run folder"
        )
    accelerator.load_state(str(path))  # refuses a step holding a custom-object pickle: none is registered
    if loss is not None:
        loss.load_state_dict(torch.load(path / LOSS_STATE_FILE, weights_only=True))
    return position, torch.load(path / GENERATOR_FILE, weights_only=True)


def resume(
    accelerator: Accelerator, folder: Path, config: TrainConfig, loss: Stateful | None = None
) -> tuple[Path, dict, torch.Tensor] | None:
    """Load the newest step that loads, newest first (see load_checkpoint); None when there is none.

    A step that fails to load is reported and renamed `damaged-step-*` once an older one has loaded;
    other settings are an error at once, and so is a folder none of whose steps load."""
    steps = sorted(folder.glob("step-*"), reverse=True) if folder.is_dir() else []
    damaged: list[tuple[Path, Exception]] = []
    for path in steps:
        try:
            position, epoch_generator = load_checkpoint(accelerator, path, config, loss)
        except CheckpointMismatchError:
            raise
        except Exception as err:  # a truncated or foreign file: whatever its loader raises
            log.warning("checkpoint %s cannot be loaded (%s: %s); trying the one before", path, type(err).__name__, err)
            damaged.append((path, err))
            continue
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            for bad, _ in damaged:  # out of the way, so that newer saves are the newest again
                bad.rename(bad.with_name(f"damaged-{bad.name}"))
        return path, position, epoch_generator
    if damaged:
        path, err = damaged[0]
        raise CompressionsError(
            f"no training-state step in {folder} can be loaded (newest, {path.name}: {type(err).__name__}: {err}); delete it to start over"
        )
    return None
