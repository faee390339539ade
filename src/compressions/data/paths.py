"""Where data files are looked up: a path as given, then the data dir, then the Hugging Face hub.

The data dir comes from `--data-dir`, else the env var COMPRESSIONS_DATA_DIR. Short names map to the
files of the shared data folder layout (see README), so `squad` finds `<data-dir>/squad/dev-A.json.gz`.
"""

from __future__ import annotations

import os
from pathlib import Path

from compressions.errors import DataError

DATA_DIR_ENV = "COMPRESSIONS_DATA_DIR"
SHORT_NAMES = {
    "squad": "squad/dev-A.json.gz",
    "alpaca_plus_train": "alpaca_plus/alpaca_plus_train_alpaca.json.gz",
    "alpaca_plus_validation_seen": "alpaca_plus/alpaca_plus_validation_seen.json.gz",
    "alpaca_plus_validation_unseen": "alpaca_plus/alpaca_plus_validation_unseen.json.gz",
}


def data_dir(explicit: str | Path | None = None) -> Path | None:
    value = explicit or os.environ.get(DATA_DIR_ENV)
    return Path(value) if value else None


def resolve(source: str, explicit_data_dir: str | Path | None = None) -> Path | str:
    """A local Path when the file exists, else the source itself as a hub dataset id.

    Raises DataError when the source is neither a file found locally nor shaped like a hub id.
    """
    tried = [Path(source)]
    root = data_dir(explicit_data_dir)
    if root is not None:
        tried += [root / SHORT_NAMES[source]] if source in SHORT_NAMES else []
        tried += [root / source]
    for path in tried:
        if path.is_file():
            return path
    folders = [str(path) for path in tried if path.is_dir()]
    if folders:  # a hub id is never a folder here: say so, not "could not load hub dataset"
        raise DataError(f"data {source!r} is a folder ({folders[0]}), not a data file: name the file in it, or pass the folder as --data-dir")
    if "/" in source and not source.endswith((".json", ".gz", ".jsonl")):
        return source  # e.g. rajpurkar/squad: loaded with `datasets` when online
    hint = "" if root else f" (no data dir set: pass --data-dir or set {DATA_DIR_ENV})"
    raise DataError(f"data {source!r} not found; tried {', '.join(map(str, tried))}{hint}")
