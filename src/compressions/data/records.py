"""Reading record files: JSON (.json or .json.gz) read in one piece, and malformed records, each named with
its file and index, then skipped or fatal."""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from compressions.config import check_choice
from compressions.errors import DataError

log = logging.getLogger(__name__)
ON_ERROR = ("skip", "raise")
T = TypeVar("T")


def read_json(path: Path) -> Any:
    """The parsed file; an empty, truncated, non-UTF-8 or non-JSON file is one DataError naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, EOFError, OSError, zlib.error, RecursionError) as err:  # JSON or UTF-8; gzip, disk; nesting
        why = "the file is empty" if path.stat().st_size == 0 else f"{type(err).__name__}: {err}"
        raise DataError(f"{path} cannot be read as JSON: {why}") from None


def unencodable(text: str) -> bool:
    """Whether `text` holds what no tokenizer takes: a lone surrogate (JSON's "\\ud800") or a NUL."""
    if "\0" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@dataclass
class RecordIssues:
    """Collects problems while a file is read; `on_error='raise'` stops at the first."""

    source: str
    on_error: str = "skip"
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_choice("on_error", self.on_error, ON_ERROR)

    def report(self, index: int | str, problem: str) -> None:
        where = f"[{index}]: {problem}"
        if self.on_error == "raise":
            raise DataError(f"malformed record: {self.source} {where}")
        self.problems.append(where)

    def finish(self, examples: list[T]) -> list[T]:
        """The examples read, once each skipped record is logged; none at all is one error (a file of nothing
        usable is the wrong file, and every later step would divide by zero on it)."""
        if not examples:
            first = f"; the first: {self.problems[0]}" if self.problems else ""
            raise DataError(f"no valid record in {self.source} ({len(self.problems)} malformed{first})")
        for problem in self.problems:
            log.warning("skipped malformed record: %s %s", self.source, problem)
        return examples


def load_hub_rows(name: str, split: str):
    """A Hugging Face hub dataset split (the fallback when no local file has the name), through the
    optional `datasets` package; every failure (missing package, offline, unknown id or split) is one line."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{name!r} is no local file; loading it from the Hugging Face hub needs 'datasets': pip install 'compressions[hub]'") from None
    try:
        return datasets.load_dataset(name, split=split)
    except Exception as err:  # offline, unknown id, unknown split
        raise DataError(f"could not load hub dataset {name!r} split {split!r}: {str(err).splitlines()[0]}") from None
