"""A trained SQuAD reader: the LoRA adapter saved by `compressions train reader`, and its prompt."""

from __future__ import annotations

import json
from pathlib import Path

from peft import PeftModel
from safetensors import safe_open
from transformers import PreTrainedModel

from compressions.errors import ConfigError, ModelNotFoundError
from compressions.store.saved import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from compressions.training.lora import load_adapter


def load_reader(model: PreTrainedModel, path: str | Path) -> PeftModel:
    """The model with the reader adapter saved in `path` (a `compressions train reader` run folder)."""
    path = Path(path)
    if not (path / ADAPTER_CONFIG).is_file():
        raise ModelNotFoundError(f"reader {str(path)!r} not found: expected {ADAPTER_CONFIG} in that folder")
    misfit = _misfit(model, path)
    if misfit is not None:
        made_for = (reader_settings(path) or {}).get("model", "unknown")
        raise ConfigError(
            f"reader {path} was trained for model {made_for!r} and does not fit this one ({misfit}); "
            "evaluate with that model, or train a reader for this one"
        )
    return load_adapter(model, path).eval()


def _misfit(model: PreTrainedModel, path: Path) -> str | None:
    """The first adapter weight that does not fit `model` (a module it lacks, or other sizes), or None. Checked
    first: peft stops at a wrong size with a wall of text, and loads an adapter of more layers than the model
    has silently."""
    if not (path / ADAPTER_WEIGHTS).is_file():
        return None
    with safe_open(path / ADAPTER_WEIGHTS, framework="pt") as weights:
        for key in weights.keys():
            name, lora, part = key.removeprefix("base_model.model.").rpartition(".lora_")
            if not lora:
                continue
            try:
                out_features, in_features = model.get_submodule(name).weight.shape
            except AttributeError:
                return f"it has no module {name}"
            rows, columns = weights.get_slice(key).get_shape()  # lora_A: (r, in), lora_B: (out, r)
            side, got, size = ("inputs", columns, in_features) if part.startswith("A") else ("outputs", rows, out_features)
            if got != size:
                return f"{name} has {size} {side}, the adapter {got}"
    return None


def with_reader(model: PreTrainedModel, path: str | Path | None) -> PreTrainedModel:
    """The model with the reader's adapter merged into its weights (a plain model that reads as the
    reader does), or the model itself when no reader is given."""
    return model if path is None else load_reader(model, path).merge_and_unload()


def reader_settings(path: str | Path) -> dict | None:
    """The config the reader was trained with (its run folder's config.json: model, prompt, ...)."""
    config = Path(path) / "config.json"
    return json.loads(config.read_text()) if config.is_file() else None


def reader_prompt(path: str | Path) -> dict | None:
    """The prompt config the reader was trained with."""
    settings = reader_settings(path)
    return settings["prompt"] if settings else None
