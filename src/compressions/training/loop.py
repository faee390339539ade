"""A small training loop on Hugging Face Accelerate: AdamW, warmup + schedule, accumulation,
clipping, seeding, a progress bar and a JSONL log. One job: run optimizer steps over a loss function.

The caller owns the model and the loss: `loss_fn(module, batch) -> (loss, {name: float})`.
The same code runs on one CPU, one GPU, or several under `accelerate launch` / `torchrun`: every
optimizer step sees the same `batch_size` examples and logs the same loss on any number of processes.
Given a checkpoint folder it saves its state every `checkpoint_every` steps and, when started again
with the same settings, continues from the last checkpoint as if never stopped (training.checkpoints).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler
from transformers import get_scheduler
from transformers.trainer_pt_utils import LengthGroupedSampler

from compressions.errors import CompressionsError
from compressions.progress import tqdm
from compressions.training.checkpoints import keep_trainable_only, resume, save_checkpoint
from compressions.training.config import TrainConfig

log = logging.getLogger(__name__)
LossFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]


class NonFiniteLossError(CompressionsError):
    pass


class WholeSteps(BatchSampler):
    """Micro-batches of `batch_size` indices; each epoch ends at a multiple of `per_step` micro-batches.

    The cut keeps the optimizer steps identical across world sizes: Accelerate hands process k the
    micro-batches k, k+W, ..., and would otherwise step on a partial accumulation at the end of an epoch.
    """

    def __init__(self, sampler: Sampler[int], batch_size: int, per_step: int):
        super().__init__(sampler, batch_size, drop_last=True)
        self.per_step = per_step

    def __len__(self) -> int:
        return super().__len__() // self.per_step * self.per_step

    def __iter__(self) -> Iterator[list[int]]:
        return itertools.islice(super().__iter__(), len(self))


def example_loader(
    dataset: Sequence,
    collate_fn: Callable[[list], object],
    micro_batch_size: int,
    generator: torch.Generator,
    lengths: Sequence[int] | None = None,
    per_step: int | None = 1,
) -> DataLoader:
    """Micro-batches in random order, or, given `lengths[i]` (tokens of example i), of similar lengths:
    transformers' LengthGroupedSampler sorts random mega-batches of min(50, n // (4 x micro_batch_size))
    micro-batches (less padding), so below 8 micro-batches of examples it does not group at all.
    Each epoch ends at a multiple of `per_step` micro-batches (see WholeSteps); None keeps every example."""
    sampler: Sampler[int] = RandomSampler(dataset, generator=generator)
    if lengths is not None:
        if len(lengths) != len(dataset):
            raise CompressionsError(f"{len(lengths)} lengths for {len(dataset)} examples")
        sampler = LengthGroupedSampler(micro_batch_size, lengths=list(lengths), generator=generator)
    if per_step is None:
        batches = BatchSampler(sampler, micro_batch_size, drop_last=False)
    else:
        batches = WholeSteps(sampler, micro_batch_size, per_step)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=collate_fn, generator=generator)


def train(
    module: nn.Module,
    param_groups: list[dict],
    loss_fn: LossFn,
    dataset: Sequence,
    collate_fn: Callable[[list], dict],
    config: TrainConfig,
    log_path: str | Path | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict], None] | None = None,
    lengths: Sequence[int] | None = None,
    checkpoint_dir: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    final_state: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run `config.max_steps` optimizer steps; returns one log row per step.

    `on_step(step, row)` runs after each optimizer step (e.g. to advance a loss schedule).
    `lengths[i]` (tokens of example i) makes micro-batches of similar lengths (see `example_loader`).
    A `loss_fn` with `state_dict`/`load_state_dict` (e.g. its own random generator) is checkpointed too
    (its state: tensors and plain values, read back with `weights_only=True`).
    Each row's values are means over the global batch (all processes); with `tensorboard_dir` they
    are also TensorBoard scalars in `<tensorboard_dir>/train`. `final_state(state_dict)` is called at the end
    on the main process with the trained module's full state dict, gathered by every process together
    (`Accelerator.get_state_dict`: under FSDP each process holds a shard, and the module object the caller
    passed in no longer has whole weights).
    """
    config.validate()
    set_seed(config.seed)
    cpu = not torch.cuda.is_available()
    # the first state made fixes the distributed setup: without cpu=True several CPU processes would each run alone
    accumulation = config.accumulation_steps(PartialState(cpu=cpu).num_processes)
    accelerator = Accelerator(
        gradient_accumulation_steps=accumulation,
        mixed_precision=config.mixed_precision,
        cpu=cpu,
        log_with="tensorboard" if tensorboard_dir is not None else None,
        project_dir=tensorboard_dir,
    )
    keep_trainable_only(accelerator)
    generator = torch.Generator().manual_seed(config.seed)
    per_step = config.batch_size // config.micro_batch_size  # micro-batches per optimizer step, all processes
    loader = example_loader(dataset, collate_fn, config.micro_batch_size, generator, lengths, per_step)
    if len(loader) == 0:
        raise CompressionsError(
            f"{len(dataset)} examples cannot fill one optimizer step of {config.batch_size} examples"
        )
    optimizer = torch.optim.AdamW(param_groups, lr=config.learning_rate, weight_decay=config.weight_decay)
    # Accelerate steps a prepared scheduler once per process, hence the factor.
    scheduler = get_scheduler(
        config.scheduler,
        optimizer,
        num_warmup_steps=math.ceil(config.warmup_ratio * config.max_steps) * accelerator.num_processes,
        num_training_steps=config.max_steps * accelerator.num_processes,
    )
    module, optimizer, loader, scheduler = accelerator.prepare(module, optimizer, loader, scheduler)
    stateful = loss_fn if hasattr(loss_fn, "state_dict") and hasattr(loss_fn, "load_state_dict") else None
    module.train()
    history: list[dict] = []
    step, skip, last_checkpoint = 0, 0, None
    if checkpoint_dir is not None and (resumed := resume(accelerator, Path(checkpoint_dir), config, stateful)) is not None:
        last_checkpoint, position, epoch_generator = resumed
        step, skip, history = position["step"], position["epoch_batches"], position["history"]
        generator.set_state(epoch_generator)  # the epoch in progress is reshuffled exactly as before
        log.info("resuming at step %d from %s", step, last_checkpoint)
    if tensorboard_dir is not None:  # on resume, TensorBoard hides what an earlier run logged after the checkpoint
        accelerator.init_trackers("train", init_kwargs={"tensorboard": {"purge_step": step + 1}})
    sink = None
    if log_path and accelerator.is_main_process:
        sink = open(log_path, "w", encoding="utf-8")  # a rerun rewrites the log: no second copy of its rows
        sink.writelines(json.dumps(row) + "\n" for row in history)  # drops rows logged after the checkpoint
    bar = tqdm(
        total=config.max_steps, initial=step, desc="train", unit="step", disable=not (progress and accelerator.is_main_process)
    )
    pending = []
    while step < config.max_steps:
        epoch_generator = generator.get_state()  # iterating the loader draws this epoch's order from it
        epoch_batches = skip
        for batch in accelerator.skip_first_batches(loader, skip) if skip else loader:
            epoch_batches += 1
            with accelerator.accumulate(module):
                loss, logs = loss_fn(module, batch)
                if not torch.isfinite(loss):
                    kept = f"; last good checkpoint {last_checkpoint}" if last_checkpoint else ""
                    raise NonFiniteLossError(f"loss is {loss.item()} at step {step + 1}; stopping ({logs}){kept}")
                accelerator.backward(loss)
                if accelerator.sync_gradients and config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            pending.append({"loss": loss.item(), **logs})
            if not accelerator.sync_gradients:
                continue
            step += 1
            local = {k: sum(p[k] for p in pending) / len(pending) for k in pending[0]}
            # every process ran as many micro-batches, so the mean of the processes' means is the global batch's
            means = accelerator.reduce(torch.tensor(list(local.values()), dtype=torch.float64, device=accelerator.device), "mean")
            row = {"step": step, "lr": scheduler.get_last_lr()[0], **dict(zip(local, means.tolist()))}
            pending = []
            history.append(row)
            accelerator.log({k: v for k, v in row.items() if k != "step"}, step=step)
            if sink:
                sink.write(json.dumps(row) + "\n")
                sink.flush()
            if on_step is not None:
                on_step(step, row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            if step % config.log_every == 0:
                log.info("step %d %s", step, {k: round(v, 5) for k, v in row.items() if k != "step"})
            if checkpoint_dir is not None and config.checkpoint_every and (
                step % config.checkpoint_every == 0 or step == config.max_steps
            ):
                last_checkpoint = save_checkpoint(
                    accelerator, Path(checkpoint_dir), step, epoch_batches, epoch_generator, history, config, stateful
                )
            if step == config.max_steps:
                break
        skip = 0
    bar.close()
    if sink:
        sink.close()
    for tracker in accelerator.trackers:  # not accelerator.end_training(): it ends the process group the caller may still use
        tracker.finish()
    if final_state is not None:
        state = accelerator.get_state_dict(module)  # a collective: every process takes part
        if accelerator.is_main_process:
            final_state(state)
    accelerator.wait_for_everyone()
    return history
