"""A trained SQuAD reader: the LoRA adapter saved by `compressions train reader`, and its prompt."""

from __future__ import annotations

import json
from pathlib import Path

from peft import PeftModel
from transformers import PreTrainedModel

from compressions.errors import ModelNotFoundError
from compressions.training.lora import load_adapter


def load_reader(model: PreTrainedModel, path: str | Path) -> PeftModel:
    """The model with the reader adapter saved in `path` (a `compressions train reader` run folder)."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"reader {str(path)!r} not found: expected adapter_config.json in that folder")
    return load_adapter(model, path).eval()


def with_reader(model: PreTrainedModel, path: str | Path | None) -> PreTrainedModel:
    """The model with the reader's adapter merged into its weights (a plain model that reads as the
    reader does), or the model itself when no reader is given."""
    return model if path is None else load_reader(model, path).merge_and_unload()


def reader_prompt(path: str | Path) -> dict | None:
    """The prompt config the reader was trained with (from its run folder's config.json)."""
    config = Path(path) / "config.json"
    return json.loads(config.read_text())["prompt"] if config.is_file() else None
