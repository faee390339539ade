"""Progress bars that suit where they are written: tqdm's live bar on a terminal; elsewhere (a log file, a
grid cell's worker.log, CI) plain lines, one at most every 30 s and one when a bar ends, without the
carriage returns and cursor moves that a live bar (and a nested one) leaves in a file."""

from __future__ import annotations

import re
import sys
from typing import TextIO

from tqdm.std import tqdm as _tqdm

_CONTROL = re.compile(r"\r|\x1b\[[0-9;]*[A-Za-z]")  # carriage returns and ANSI cursor moves
OFFLINE_INTERVAL = 30.0  # seconds between two lines of a bar written to a file


class _Lines:
    """A stream that turns each status tqdm writes into one plain line."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def write(self, text: str) -> None:
        line = _CONTROL.sub("", text).strip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class tqdm(_tqdm):  # noqa: N801 (the name users of tqdm know)
    def __init__(self, *args, **kwargs):
        stream = kwargs.get("file") or sys.stderr
        if not _is_terminal(stream):
            kwargs.update(file=_Lines(stream), mininterval=max(kwargs.get("mininterval", 0), OFFLINE_INTERVAL), ascii=True)
        super().__init__(*args, **kwargs)


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
