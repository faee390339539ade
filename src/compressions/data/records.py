"""Reporting malformed records: each one is named with its file and index, then skipped or fatal."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from compressions.errors import DataError

log = logging.getLogger(__name__)
ON_ERROR = ("skip", "raise")


@dataclass
class RecordIssues:
    """Collects problems while a file is read; `on_error='raise'` stops at the first."""

    source: str
    on_error: str = "skip"
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")

    def report(self, index: int | str, problem: str) -> None:
        message = f"{self.source} [{index}]: {problem}"
        if self.on_error == "raise":
            raise DataError(f"malformed record: {message}")
        self.problems.append(message)
        log.warning("skipped malformed record: %s", message)
