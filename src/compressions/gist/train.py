"""Train a gist model (or a control) on Alpaca-format data and save it with `save_pretrained`.

Modes:
- `full`: every weight trains, as in the paper.
- `lora`: peft LoRA adapters plus the `<GIST>` embedding row (peft `trainable_token_indices`).
- `frozen`: only the `<GIST>` row trains (peft `TrainableTokens`); every other weight stays bit-identical.
LoRA and frozen models are merged before saving, so every saved gist model is a plain transformers
directory (tokenizer with `<GIST>` included) that `load_model` reads.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from pathlib import Path

from peft import TrainableTokensConfig
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressions.data.alpaca import AlpacaExample, load_alpaca
from compressions.errors import DataError
from compressions.gist.config import GistConfig
from compressions.gist.data import GistCollator, training_example
from compressions.gist.masks import float_mask_dtype
from compressions.gist.tokens import add_gist_token
from compressions.models import load_model
from compressions.store.run_folder import RunFolder, is_main_process
from compressions.store.saved import GIST_CONFIG
from compressions.training.loop import train
from compressions.training.lora import add_adapter

log = logging.getLogger(__name__)


def prepare_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: GistConfig) -> tuple[nn.Module, int]:
    """Add `<GIST>` and set what trains for `config.mode`; returns (module to train, gist id)."""
    gist_id = add_gist_token(model, tokenizer)
    embeddings = _input_embedding_name(model)
    if config.mode == "full":
        return model.requires_grad_(True), gist_id
    if config.mode == "lora":
        peft_config = config.lora.peft_config(trainable_token_indices={embeddings: [gist_id]})
    else:
        peft_config = TrainableTokensConfig(token_indices=[gist_id], target_modules=[embeddings])
    with warnings.catch_warnings():
        # peft warns that tied embeddings have no tied adapter: the gist row is shared by the head anyway
        # (tests check merged logits equal the adapter's).
        warnings.filterwarnings("ignore", message="Model has `tie_word_embeddings=True`", category=UserWarning)
        return add_adapter(model, peft_config), gist_id


def _input_embedding_name(model: PreTrainedModel) -> str:
    """Last component of the input embedding's module name (`embed_tokens` for Llama)."""
    embedding = model.get_input_embeddings()
    return next(name for name, module in model.named_modules() if module is embedding).rsplit(".", 1)[-1]


def gist_loss(module: nn.Module, batch: dict) -> tuple:
    out = module(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        labels=batch["labels"],
    )
    return out.loss, {"completion_tokens": float((batch["labels"] != -100).sum())}


def build_dataset(
    tokenizer: PreTrainedTokenizerBase, examples: list[AlpacaExample], config: GistConfig, gist_id: int
) -> list[dict[str, list[int]]]:
    """Tokenised examples; those whose prompt leaves no completion token within max_length are dropped."""
    rows = [training_example(tokenizer, e, config.num_gist, gist_id, config.prompt_format, config.max_length) for e in examples]
    kept = [r for r in rows if any(label != -100 for label in r["labels"])]
    if len(kept) < len(rows):
        log.warning("dropped %d of %d examples whose prompt fills max_length=%d", len(rows) - len(kept), len(rows), config.max_length)
    if not kept:
        raise DataError("no training example fits max_length")
    return kept


def prepare_training(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, examples: list[AlpacaExample], config: GistConfig
) -> tuple[nn.Module, list[dict[str, list[int]]], GistCollator]:
    """What a gist training run steps over: the module to train, the tokenised examples and their collator."""
    module, gist_id = prepare_model(model, tokenizer, config)
    dataset = build_dataset(tokenizer, examples, config, gist_id)
    return module, dataset, GistCollator(tokenizer.pad_token_id, gist_id, config.condition, float_mask_dtype(model))


def train_gist(
    config: GistConfig,
    examples: list[AlpacaExample] | None = None,
    model: PreTrainedModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    progress: bool = True,
) -> dict:
    """Train, save the merged model to `<out>/model`, and return the run's summary (also metrics.json).

    A model passed in is trained in place (LoRA and frozen weights are merged back into it)."""
    config.validate()
    if examples is None:
        examples = load_alpaca(config.data, config.data_dir)[: config.n_examples]
    if model is None or tokenizer is None:
        model, tokenizer = load_model(config.model, config.dtype, config.device, attn_implementation=config.attn_implementation)
    module, dataset, collate = prepare_training(model, tokenizer, examples, config)
    config.train.max_steps = max(1, math.floor(len(dataset) * config.epochs / config.train.batch_size))
    out = Path(config.out or f"runs/gist/{config.run_name}")
    with RunFolder(out) as run:
        run.save_config(config)
        trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
        log.info("%s: %d examples, %d steps, %d trainable parameters", config.run_name, len(dataset), config.train.max_steps, trainable)
        start = time.perf_counter()
        params = [p for p in module.parameters() if p.requires_grad]
        lengths = [len(r["input_ids"]) for r in dataset] if config.group_by_length else None
        gathered: dict = {}  # full fine-tuning: the weights as gathered from every process (whole under FSDP)
        history = train(
            module, [{"params": params}], gist_loss, dataset, collate, config.train, out / "train_log.jsonl", progress, lengths=lengths,
            checkpoint_dir=out / "train_state", tensorboard_dir=run.tensorboard_dir,
            final_state=gathered.update if config.mode == "full" else None,
        )
        seconds = time.perf_counter() - start
        trained = module.merge_and_unload() if config.mode != "full" else module
        trained.eval()
        if is_main_process():
            trained.save_pretrained(out / "model", state_dict=gathered or None)
            tokenizer.save_pretrained(out / "model")
        run.write_json(f"model/{GIST_CONFIG}", dataclasses.asdict(config))
        summary = {
            "run_name": config.run_name,
            "examples": len(dataset),
            "steps": config.train.max_steps,
            "trainable_parameters": trainable,
            "train_seconds": seconds,
            "seconds_per_step": seconds / config.train.max_steps,
            "first_loss": history[0]["loss"],
            "final_loss": sum(h["loss"] for h in history[-10:]) / len(history[-10:]),
            "model_dir": str(out / "model"),
        }
        run.write_metrics(summary)
        log.info("%s: trained in %.0f s, final loss %.3f", config.run_name, seconds, summary["final_loss"])
    return summary
