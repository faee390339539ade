"""Putting a LoRA adapter on a model: a new one to train, or a trained reader from its folder."""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

from compressions.errors import ModelNotFoundError


@contextlib.contextmanager
def _quiet_peft():
    # peft 0.21 reads `is_gradient_checkpointing`, which transformers 5.23 deprecated (a FutureWarning
    # that the test suite turns into an error); nothing to act on in our code.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def add_lora(model: PreTrainedModel, config: LoraConfig) -> PeftModel:
    with _quiet_peft():
        return get_peft_model(model, config)


def load_reader(model: PreTrainedModel, path: str | Path) -> PeftModel:
    """The model with the reader adapter saved in `path` (a `compressions train reader` run folder)."""
    path = Path(path)
    if not (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"reader {str(path)!r} not found: expected adapter_config.json in that folder")
    with _quiet_peft():
        reader = PeftModel.from_pretrained(model, path)
    return reader.eval()


def reader_prompt(path: str | Path) -> dict | None:
    """The prompt config the reader was trained with (from its run folder's config.json)."""
    config = Path(path) / "config.json"
    return json.loads(config.read_text())["prompt"] if config.is_file() else None
