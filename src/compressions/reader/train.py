"""Train the SQuAD reader: LoRA on the target model, full contexts, loss on the answer only.

Each question becomes the harness's own prompt (data/prompts.py) followed by its first reference
answer and EOS, so the reader learns exactly the answer format the harness scores.
"""

from __future__ import annotations

import logging
import time

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.data.documents import pack_documents
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.data.squad import SquadExample, load_squad
from compressions.models import load_model
from compressions.reader.config import ReaderConfig
from compressions.store.run_folder import RunFolder, is_main_process
from compressions.training.loop import train
from compressions.training.lora import add_adapter

log = logging.getLogger(__name__)
IGNORE = -100  # label value the loss skips


def reader_example(
    tokenizer: PreTrainedTokenizerBase, example: SquadExample, prompt: SquadPromptConfig
) -> dict[str, list[int]]:
    layout = SquadPrompt(tokenizer, prompt)
    context = tokenizer(example.context, add_special_tokens=False).input_ids
    prompt_ids = layout.with_context(example.question, context)
    answer = layout.answer_ids(example.answers[0])
    return {"input_ids": prompt_ids + answer, "labels": [IGNORE] * len(prompt_ids) + answer}


def collate(rows: list[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (B, T) input_ids, attention_mask and labels."""
    width = max(len(r["input_ids"]) for r in rows)
    batch = {
        "input_ids": torch.full((len(rows), width), pad_id),
        "attention_mask": torch.zeros((len(rows), width), dtype=torch.long),
        "labels": torch.full((len(rows), width), IGNORE),
    }
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        batch["input_ids"][i, :n] = torch.tensor(r["input_ids"])
        batch["attention_mask"][i, :n] = 1
        batch["labels"][i, :n] = torch.tensor(r["labels"])
    return batch


def answer_loss(module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    out = module(**batch)  # the model shifts labels itself; IGNORE positions are skipped
    return out.loss, {"answer_tokens": float((batch["labels"] != IGNORE).sum())}


def train_reader(
    config: ReaderConfig,
    examples: list[SquadExample] | None = None,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: bool = True,
) -> list[dict]:
    """Fit the adapter and save it with its config in `config.out`; returns the training history.

    `examples` default to the train split of `config.data` (packed into documents with `config.documents`); a
    passed model is wrapped in place.
    """
    if examples is None:
        examples = load_squad(config.data, "train", config.data_dir, config.on_error, config.train_articles)
    if model is None or tokenizer is None:
        model, tokenizer = load_model(config.model, config.dtype, config.device)
    packing = None
    if config.documents:  # every question of a paragraph now reads the document that holds it
        examples, packing = pack_documents(examples, tokenizer, config.documents)
    examples = examples[: config.limit] if config.limit else examples
    torch.manual_seed(config.train.seed)  # the adapter's random init is part of the run
    reader = add_adapter(model, config.lora.peft_config(task_type="CAUSAL_LM"))
    dataset = [reader_example(tokenizer, e, config.prompt) for e in examples]
    trainable = [p for p in reader.parameters() if p.requires_grad]
    with RunFolder(config.out) as run:
        run.save_config(config)
        log.info("reader: %d questions, %d trainable parameters", len(dataset), sum(p.numel() for p in trainable))
        start = time.perf_counter()
        history = train(
            reader,
            [{"params": trainable}],
            answer_loss,
            dataset,
            lambda rows: collate(rows, tokenizer.pad_token_id),
            config.train,
            run.path / "train_log.jsonl",
            progress,
            checkpoint_dir=run.path / "train_state",
            tensorboard_dir=run.tensorboard_dir,
        )
        seconds = time.perf_counter() - start
        if is_main_process():
            reader.save_pretrained(run.path)
        metrics = {"steps": len(history), "first_loss": history[0]["loss"], "last_loss": history[-1]["loss"], "seconds": seconds}
        if packing is not None:
            metrics["documents"] = packing.as_dict()
        run.write_metrics(metrics)
    reader.eval()
    return history
