"""Compressed contexts kept on disk, so runs that differ only in their reader compress once.

Text methods compress with the base model (a reader's adapter is off while compressing; the tests check
it), so `abstractive-M32-reader` reads exactly the kept tokens of `abstractive-M32`. One cache file holds
one method's outputs at one budget: its name hashes everything that decides them (method, options,
budget, model, dtype, device, the code's commit); each line maps a (context, question) to the kept ids
and the seconds compressing took when they were made. Lines are appended as they come, so a killed run
keeps what it finished; a torn last line is ignored.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from compressions.methods.base import CompressedContext
from compressions.store.run_folder import atomic_write_text


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class CompressedCache:
    def __init__(self, folder: str | Path, identity: dict):
        self.path = Path(folder) / f"{identity['method']}-M{identity['budget']}-{_digest(identity)[:16]}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            lines = self.path.read_text(encoding="utf-8").splitlines()
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:  # torn by a kill mid-write
                    continue
                self.entries[entry["key"]] = entry
            if len(self.entries) < len(lines):  # drop the torn line before appending after it
                atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in self.entries.values()))

    @staticmethod
    def key(context: str, question: str) -> str:
        return _digest([context, question])

    def get(self, context: str, question: str) -> CompressedContext | None:
        entry = self.entries.get(self.key(context, question))
        return None if entry is None else CompressedContext(entry["token_ids"], entry["text"], entry["seconds"])

    def put(self, context: str, question: str, compressed: CompressedContext) -> None:
        entry = {"key": self.key(context, question), "token_ids": compressed.token_ids, "text": compressed.text, "seconds": compressed.seconds}
        self.entries[entry["key"]] = entry
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
