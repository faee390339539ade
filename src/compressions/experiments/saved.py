"""What a folder saved by this project's trainers holds, read from the small JSON files each writes beside
its weights, so that a folder given in the wrong role (a compressor checkpoint as a gist model, a gist model
as a compressor checkpoint) is refused naming what it is, before a model loads or a file is written."""

from __future__ import annotations

import json
from pathlib import Path

from compressions.errors import ArgumentError

COMPRESSOR = "compressor checkpoint"
READER = "reader adapter"


def saved_kind(path: str | Path) -> str | None:
    """'compressor checkpoint', 'reader adapter', '<condition> model' (a `gist train` model: gist, pos_control
    or neg_control), or None for anything else (a base model, a hub id, a path that does not exist)."""
    from compressions.compressors.pipeline import COMPRESSOR_FILE
    from compressions.gist.evaluate import gist_settings
    from compressions.reader.adapter import ADAPTER_CONFIG

    folder = Path(path)
    if (folder / COMPRESSOR_FILE).is_file():
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


def compressor_settings(path: str | Path) -> dict:
    """The pipeline config a compressor checkpoint was trained with (model, budget, ...); a ConfigError
    naming what the folder holds when it is not one."""
    from compressions.compressors.pipeline import CONFIG_FILE

    if saved_kind(path) != COMPRESSOR:
        raise ArgumentError("checkpoint", f"{path} is {describe(path)}, not a compressor checkpoint (`compressions train compressor`)")
    return json.loads((Path(path) / CONFIG_FILE).read_text(encoding="utf-8"))


def checked_compressor_settings(path: str | Path, **given) -> dict:
    """`compressor_settings`, refusing any given model, budget or reader that differs from the checkpoint's
    (the checkpoint fixes them: a different one would be silently ignored)."""
    trained = compressor_settings(path)
    for key, value in given.items():
        if value is not None and value != trained[key]:
            raise ArgumentError(key, f"{value} conflicts with checkpoint {path}, trained with {key} {trained[key]}; leave {key} out")
    return trained
