import gzip
import json

import pytest

from compressions.data import load_alpaca, load_squad
from compressions.data.squad import parse_squad, split_by_article
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.errors import DataError


def test_synthetic_squad_answers_are_spans_and_seeded():
    examples = synthetic_squad(50, seed=3)
    for e in examples:
        assert e.context[e.answer_starts[0] :].startswith(e.answers[0])
    assert synthetic_squad(50, seed=3) == examples
    assert synthetic_squad(50, seed=4) != examples


def test_synthetic_alpaca_is_seeded():
    assert synthetic_alpaca(20, seed=1) == synthetic_alpaca(20, seed=1)
    assert all(e.instruction and e.input and e.output for e in synthetic_alpaca(20))


def _squad(paragraphs):
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": paragraphs}]}


GOOD = {"context": "Paris is in France.", "qas": [{"id": "q1", "question": "Where?", "answers": [{"text": "France", "answer_start": 12}]}]}


@pytest.mark.parametrize(
    "paragraph, problem",
    [
        ({"context": "", "qas": [{"id": "q", "question": "?", "answers": [{"text": "x", "answer_start": 0}]}]}, "empty"),
        ({"context": "Paris.", "qas": [{"id": "q", "answers": [{"text": "Paris", "answer_start": 0}]}]}, "missing field(s) question"),
        ({"context": "Paris.", "qas": [{"id": "q", "question": "?", "answers": [{"text": "Lyon", "answer_start": 0}]}]}, "not in the context"),
    ],
)
def test_malformed_squad_records_are_named_then_skipped_or_fatal(paragraph, problem, tmp_path):
    path = tmp_path / "bad.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        json.dump(_squad([GOOD, paragraph]), f)
    kept = load_squad(str(path), split="all", on_error="skip")
    assert [e.id for e in kept] == ["q1"]
    with pytest.raises(DataError) as err:
        load_squad(str(path), split="all", on_error="raise")
    message = str(err.value)
    assert str(path) in message and "article 0, paragraph 1, question 0" in message and problem in message


def test_split_by_article():
    data = {"data": [{"title": f"A{i}", "paragraphs": [GOOD]} for i in range(5)]}
    examples = parse_squad(data, "mem")
    assert [e.article for e in split_by_article(examples, "train", train_articles=3)] == [0, 1, 2]
    assert [e.article for e in split_by_article(examples, "validation", train_articles=3)] == [3, 4]
    with pytest.raises(DataError):
        split_by_article(examples, "test")


def test_malformed_alpaca_records(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "Do", "input": "", "output": "ok"}, {"instruction": "No output", "input": ""}]))
    assert len(load_alpaca(str(path))) == 1
    with pytest.raises(DataError, match=r"a.json \[1\]: missing or non-string field\(s\) output"):
        load_alpaca(str(path), on_error="raise")


def test_missing_file_names_what_was_tried(tmp_path):
    with pytest.raises(DataError, match="tried nothing.json.gz"):
        load_squad("nothing.json.gz", data_dir=tmp_path)


def test_shared_squad_split(shared_data):
    everything = load_squad("squad", split="all", data_dir=shared_data, on_error="raise")
    train = load_squad("squad", split="train", data_dir=shared_data)
    validation = load_squad("squad", split="validation", data_dir=shared_data)
    assert (len(everything), len(train), len(validation)) == (5696, 4913, 783)
    assert {e.title for e in validation} == {"Black_Death", "Geology", "Newcastle_upon_Tyne", "Victoria_and_Albert_Museum"}
    assert not {e.title for e in train} & {e.title for e in validation}


def test_shared_alpaca_files(shared_data):
    for split in ("seen", "unseen"):
        examples = load_alpaca(f"alpaca_plus_validation_{split}", data_dir=shared_data, on_error="raise")
        assert len(examples) == 1000 and all(e.input for e in examples)


def test_hub_squad_rows_become_examples_grouped_by_article(monkeypatch):
    import datasets

    rows = [
        {"id": f"q{i}", "title": title, "context": "Paris is in France.", "question": "Where?",
         "answers": {"text": ["France"], "answer_start": [12]}}
        for i, title in enumerate(["A", "A", "B"])
    ]
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: calls.append((name, split)) or rows)
    examples = load_squad("rajpurkar/squad", split="validation")
    assert calls == [("rajpurkar/squad", "validation")]
    assert [(e.id, e.article, e.answers) for e in examples] == [("q0", 0, ["France"]), ("q1", 0, ["France"]), ("q2", 1, ["France"])]


def test_hub_alpaca_and_offline_error(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: [{"instruction": "Say hi", "input": "", "output": "hi"}])
    assert load_alpaca("yahma/alpaca-cleaned")[0].output == "hi"

    def offline(name, split):
        raise ConnectionError("no network\nlong traceback")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match="could not load hub dataset 'yahma/alpaca-cleaned' split 'train': no network$"):
        load_alpaca("yahma/alpaca-cleaned")


def test_hub_fallback_without_datasets_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the `hub` extra were not installed
    with pytest.raises(DataError, match=r"pip install 'compressions\[hub\]'"):
        load_squad("rajpurkar/squad", split="validation")
