"""What a folder saved by this project's trainers holds, read from the small JSON files each writes beside
its weights, so that a folder given in the wrong role (a compressor checkpoint as a gist model, a gist model
as a compressor checkpoint) is refused naming what it is, before a model loads or a file is written.

The file names live here, and each trainer writes its folder with them (compressors.pipeline, gist.train,
reader.adapter): this module reads them without importing any method package.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file

from compressions.errors import ArgumentError, ConfigError

# a learned compressor checkpoint (compressors.pipeline): its pipeline config and the compressor's own
PIPELINE_CONFIG, COMPRESSOR_CONFIG = "pipeline_config.json", "compressor_config.json"
GIST_CONFIG = "gist_config.json"  # beside a `gist train` model: its training config (condition, K, format)
ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"  # a reader adapter (peft)

COMPRESSOR = "compressor checkpoint"
GIST_MODEL = "gist model"
READER = "reader adapter"


def read_saved(path: Path, kind: str = "json"):
    """A saved JSON file's content, or a safetensors file's tensors (kind="tensors"); a cut-off, empty or
    garbage file is one ConfigError naming it, not a parser's traceback."""
    try:
        return load_file(str(path)) if kind == "tensors" else json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError, SafetensorError) as err:  # ValueError: JSON or UTF-8
        raise ConfigError(f"{path} cannot be read ({type(err).__name__}: {err}): the saved folder is damaged; save it again") from None


def model_dir(path: str) -> str:
    """A `gist train` run folder stands for its `model/` directory."""
    return str(Path(path) / "model") if (Path(path) / "model" / GIST_CONFIG).is_file() else path


def gist_settings(path: str) -> dict | None:
    """The training config saved beside a gist model, or None for a base model."""
    file = Path(model_dir(path)) / GIST_CONFIG
    return read_saved(file) if file.is_file() else None


def saved_kind(path: str | Path) -> str | None:
    """'compressor checkpoint', 'reader adapter', '<condition> model' (a `gist train` model: gist, pos_control
    or neg_control), or None for anything else (a base model, a hub id, a path that does not exist)."""
    folder = Path(path)
    if (folder / COMPRESSOR_CONFIG).is_file():
        return COMPRESSOR
    settings = gist_settings(str(path))
    if settings is not None:
        return f"{settings['condition']} model"
    return READER if (folder / ADAPTER_CONFIG).is_file() else None


def describe(path: str | Path) -> str:
    """What `path` holds, in words, for error lines."""
    kind = saved_kind(path)
    if kind is not None:
        return f"a {kind}"
    return "a base model (no file of this project's trainers)" if Path(path).exists() else "not a folder here"


def saved_settings(path: str | Path, kind: str) -> dict:
    """The config a folder of this kind was trained with (a compressor checkpoint's pipeline config: model,
    budget, reader ...; a gist model's training config); an error naming what the folder holds when it is
    not of that kind."""
    if saved_kind(path) != kind:
        raise ArgumentError("checkpoint", f"{path} is {describe(path)}, not a {kind}")
    if kind == COMPRESSOR:
        return read_saved(Path(path) / PIPELINE_CONFIG)
    return gist_settings(str(path))


def checked_settings(path: str | Path, kind: str, **given) -> dict:
    """`saved_settings`, refusing any given model, budget or reader that differs from the folder's (the
    folder fixes them: a different one would be silently ignored)."""
    trained = saved_settings(path, kind)
    for key, value in given.items():
        if value is not None and value != trained.get(key):
            raise ArgumentError(key, f"{value} conflicts with {kind} {path}, trained with {key} {trained.get(key)}; leave {key} out")
    return trained
