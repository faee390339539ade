"""Alpaca-format data (`instruction`, `input`, `output`[, `source`]): JSON / JSON.gz lists such as the
Alpaca+ files, or hub datasets such as `yahma/alpaca-cleaned`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compressions.data import paths
from compressions.data.records import RecordIssues, load_hub_rows, read_json, unencodable
from compressions.errors import DataError

FIELDS = ("instruction", "input", "output")


@dataclass(frozen=True)
class AlpacaExample:
    instruction: str
    input: str
    output: str
    source: str = ""


def parse_alpaca(rows, source: str, on_error: str = "skip") -> list[AlpacaExample]:
    issues = RecordIssues(source, on_error)
    examples = []
    for i, row in enumerate(rows):
        missing = [k for k in FIELDS if not isinstance(row.get(k), str)] if isinstance(row, dict) else None
        if missing is None:
            issues.report(i, f"not an object but {type(row).__name__}")
        elif missing:
            issues.report(i, f"missing or non-string field(s) {', '.join(missing)}")
        elif not row["instruction"].strip():
            issues.report(i, "empty instruction")
        elif any(unencodable(row[k]) for k in FIELDS):
            issues.report(i, "a field holds a lone surrogate or a NUL")
        else:
            examples.append(AlpacaExample(row["instruction"], row["input"], row["output"], row.get("source") or ""))
    return issues.finish(examples)


def load_alpaca(
    source: str, data_dir: str | Path | None = None, on_error: str = "skip", split: str = "train"
) -> list[AlpacaExample]:
    where = paths.resolve(source, data_dir)
    if isinstance(where, Path):
        rows = read_json(where)
        if not isinstance(rows, list):
            raise DataError(f"{where}: expected a JSON list of records")
        return parse_alpaca(rows, str(where), on_error)
    return parse_alpaca(load_hub_rows(where, split), where, on_error)
