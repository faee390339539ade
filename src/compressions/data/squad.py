"""SQuAD v1.1: the official JSON (.json or .json.gz) or the hub dataset `rajpurkar/squad`.

Local files split by article in file order (`train_articles` first articles = train, the rest =
validation): with the shared dev-A file that is articles 1-20 / 21-24. Hub data keeps its own splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compressions.data import paths
from compressions.data.records import RecordIssues, load_hub_rows, read_json, unencodable
from compressions.errors import DataError

SPLITS = ("train", "validation", "all")


@dataclass(frozen=True)
class SquadExample:
    id: str
    title: str
    context: str
    question: str
    answers: list[str]
    answer_starts: list[int]
    article: int = 0  # index of the article in its file, for article-level splits


def parse_squad(data: dict, source: str, on_error: str = "skip") -> list[SquadExample]:
    """Official-format dict -> examples; malformed records are reported by file and index."""
    issues = RecordIssues(source, on_error)
    examples = []
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{source}: not SQuAD JSON (expected a top-level 'data' list)")
    for a, article in enumerate(data["data"]):
        for p, paragraph in enumerate(_list(article, "paragraphs", f"article {a}", issues)):
            for q, qa in enumerate(_list(paragraph, "qas", f"article {a}, paragraph {p}", issues)):
                where = f"article {a}, paragraph {p}, question {q}"
                example = _parse_qa(qa, paragraph.get("context"), str(article.get("title", "")), a, where, issues)
                if example is not None:
                    examples.append(example)
    return issues.finish(examples)


def _list(record: Any, key: str, where: str, issues: RecordIssues) -> list:
    """record[key] when the record is an object holding a list there; otherwise reported, and empty."""
    value = record.get(key) if isinstance(record, dict) else None
    if isinstance(value, list):
        return value
    issues.report(where, f"not an object with a {key!r} list")
    return []


def _parse_qa(qa: Any, context: Any, title: str, article: int, where: str, issues: RecordIssues) -> SquadExample | None:
    if not isinstance(context, str):
        issues.report(where, f"context is {type(context).__name__}, not a string" if context is not None else "missing context")
        return None
    if not context.strip():
        issues.report(where, "empty context")
        return None
    if unencodable(context):
        issues.report(where, "context holds a lone surrogate or a NUL")
        return None
    if not isinstance(qa, dict):
        issues.report(where, f"not an object but {type(qa).__name__}")
        return None
    missing = [k for k in ("id", "question", "answers") if k not in qa]
    if missing:
        issues.report(where, f"missing field(s) {', '.join(missing)}")
        return None
    if not isinstance(qa["question"], str) or not qa["question"].strip() or unencodable(qa["question"]):  # null must not become "None"
        issues.report(where, f"question {qa['question']!r} is not a non-empty string of text (no lone surrogate, no NUL)")
        return None
    answers = qa["answers"]
    if not isinstance(answers, list) or not answers:
        issues.report(where, "no reference answers")
        return None
    for answer in answers:
        start, text = (answer.get("answer_start"), answer.get("text")) if isinstance(answer, dict) else (None, answer)
        if not isinstance(text, str) or not isinstance(start, int) or context[start : start + len(text)] != text:
            issues.report(where, f"answer {text!r} is not in the context at {start}")
            return None
    return SquadExample(
        id=str(qa["id"]),
        title=title,
        context=context,
        question=qa["question"],
        answers=[a["text"] for a in answers],
        answer_starts=[a["answer_start"] for a in answers],
        article=article,
    )


def split_by_article(examples: list[SquadExample], split: str, train_articles: int = 20) -> list[SquadExample]:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return list(examples)
    keep_train = split == "train"
    return [e for e in examples if (e.article < train_articles) == keep_train]


def load_squad(
    source: str = "squad",
    split: str = "validation",
    data_dir: str | Path | None = None,
    on_error: str = "skip",
    train_articles: int = 20,
) -> list[SquadExample]:
    where = paths.resolve(source, data_dir)
    if isinstance(where, Path):
        examples = parse_squad(read_json(where), str(where), on_error)
        return split_by_article(examples, split, train_articles)
    return _load_hub(where, split, on_error)


def _load_hub(name: str, split: str, on_error: str) -> list[SquadExample]:
    rows = load_hub_rows(name, split)
    # one paragraph per row, grouped by title so articles keep their file order for splits
    by_title: dict[str, list] = {}
    for row in rows:
        answers = [{"text": t, "answer_start": s} for t, s in zip(row["answers"]["text"], row["answers"]["answer_start"])]
        qa = {"id": row["id"], "question": row["question"], "answers": answers}
        by_title.setdefault(row["title"], []).append({"context": row["context"], "qas": [qa]})
    articles = [{"title": title, "paragraphs": paragraphs} for title, paragraphs in by_title.items()]
    return parse_squad({"data": articles}, name, on_error)
