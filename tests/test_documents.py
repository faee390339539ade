"""SQuAD documents (data/documents.py): consecutive paragraphs of one article packed to at most N tokens,
every answer still at its offset, and a question-agnostic method compressing each document once for all
its questions in the harness, with the same answers as compressing it for each question."""

import dataclasses
import json

import pytest

from compressions.data.documents import SEPARATOR, pack_documents, paragraphs_of
from compressions.data.haystacks import distractor_documents, needle_examples
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.data.synthetic import synthetic_squad
from compressions.evaluation.reading import first_line, read_compressed
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad
from compressions.methods import Target, build_method


def _articles(n_paragraphs=12, per_article=6, seed=5):
    """Synthetic paragraphs in articles of `per_article`, two questions on every third paragraph."""
    examples = []
    for i, e in enumerate(synthetic_squad(n_paragraphs, seed=seed)):
        e = dataclasses.replace(e, article=i // per_article)
        examples.append(e)
        if i % 3 == 0:  # a second question on the same paragraph
            examples.append(dataclasses.replace(e, id=f"{e.id}-b", question=f"Again: {e.question}"))
    return examples


@pytest.mark.parametrize("max_tokens", [1, 60, 150, 400, 10_000])
def test_packing_keeps_answers_at_their_offsets_and_never_cuts_a_paragraph(tiny, max_tokens):
    tokenizer = tiny[1]
    examples = _articles()
    packed, stats = pack_documents(examples, tokenizer, max_tokens)
    assert [e.id for e in packed] == [e.id for e in examples]  # every question once, in order
    for before, after in zip(examples, packed):
        assert after.article == before.article and after.question == before.question
        for answer, start in zip(after.answers, after.answer_starts):
            assert after.context[start : start + len(answer)] == answer
        assert before.context in after.context.split(SEPARATOR)  # the paragraph whole, as one part
    documents = list(dict.fromkeys(e.context for e in packed))
    parts = [p for d in documents for p in d.split(SEPARATOR)]
    assert parts == [p[0].context for p in paragraphs_of(examples)]  # consecutive, none cut, none twice
    for document in documents:
        in_it = {e.article for e in packed if e.context == document}
        assert len(in_it) == 1  # articles never mix
        length = len(tokenizer(document, add_special_tokens=False).input_ids)
        assert length <= max_tokens or SEPARATOR not in document  # over the size only as one whole paragraph
    oversized = sum(len(tokenizer(p, add_special_tokens=False).input_ids) > max_tokens for p in parts)
    assert stats.max_tokens == max_tokens and stats.documents == len(documents) and stats.paragraphs == len(parts) and stats.oversized == oversized
    assert stats.mean_questions == pytest.approx(len(packed) / len(documents))
    if max_tokens == 10_000:
        assert stats.documents == 2  # one per article


@pytest.mark.parametrize("name", ["prefix", "streaming"])
def test_a_document_compressed_once_answers_as_compressed_for_each_question(tiny, tmp_path, name):
    """A question-agnostic method: the harness compresses each document once (compressions_reused), and its
    answers are those of compressing the document for every question apart."""
    model, tokenizer = tiny
    examples = _articles()
    config = SquadEvalConfig(
        model="tiny-random-llama", method=name, budget=8, documents=200, max_new_tokens=3, n_samples=100,
        prompt=SquadPromptConfig(shots=0), out=str(tmp_path / "run"),
    )  # fmt: skip
    metrics = evaluate_squad(config, examples, [])
    packed, stats = pack_documents(examples, tokenizer, 200)
    assert metrics["compressions_made"] == stats.documents < len(examples)
    assert metrics["compressions_reused"] == len(examples) - stats.documents
    assert metrics["documents"]["documents"] == stats.documents and metrics["n"] == len(examples)
    layout = SquadPrompt(tokenizer, SquadPromptConfig(shots=0))
    method = build_method(name, tokenizer, 8)
    each = method.compress_many([e.context for e in packed], [e.question for e in packed], 8, target=Target(model, layout))
    _, generated = read_compressed(model, method, each, [e.question for e in packed], layout, 3)
    predictions = [s["prediction"] for s in json.loads((tmp_path / "run" / "sample_predictions.json").read_text())]
    assert predictions == [first_line(tokenizer.decode(g, skip_special_tokens=True)) for g in generated]


def test_a_question_aware_method_compresses_every_question(tiny, tmp_path):
    config = SquadEvalConfig(
        model="tiny-random-llama", method="snapkv", budget=8, documents=200, max_new_tokens=2,
        prompt=SquadPromptConfig(shots=0), out=str(tmp_path / "run"),
    )  # fmt: skip
    examples = _articles()
    metrics = evaluate_squad(config, examples, [])
    assert metrics["compressions_made"] == len(examples) and metrics["compressions_reused"] == 0


@pytest.mark.slow
def test_the_validation_articles_at_512_tokens(shared_data):
    """dev-A articles 21-24 with SmolLM2's tokenizer: the documents the 512 table reads."""
    from compressions.data.squad import load_squad
    from compressions.models.loading import load_tokenizer

    examples = load_squad("squad", "validation", str(shared_data))
    packed, stats = pack_documents(examples, load_tokenizer("smollm2-135m"), 512)
    assert (stats.documents, stats.paragraphs, stats.oversized) == (77, 160, 0) and len(packed) == 783
    assert 390 < stats.mean_tokens < 400 and stats.mean_questions == pytest.approx(783 / 77)


def test_a_document_size_below_one_is_refused(capsys):
    from compressions.cli.main import main

    assert main(["eval", "squad", "--model", "tiny-random-llama", "--documents", "0"]) == 2
    assert "error: --documents: is a document size in tokens, >= 1; got 0" in capsys.readouterr().err


@pytest.mark.parametrize("target_tokens", [100, 300])
def test_distractor_documents_hold_the_questions_paragraph_among_others_of_its_article_first(tiny, target_tokens):
    tokenizer = tiny[1]
    examples = _articles()
    long = distractor_documents(examples, tokenizer, target_tokens, seed=1)
    assert [e.id for e in long] == [e.id for e in examples]
    paragraphs = [p[0] for p in paragraphs_of(examples)]
    for before, after in zip(examples, long):
        parts = after.context.split(SEPARATOR)
        assert before.context in parts and len(set(parts)) == len(parts)
        for answer, start in zip(after.answers, after.answer_starts):
            assert after.context[start : start + len(answer)] == answer
        assert len(tokenizer(after.context, add_special_tokens=False).input_ids) <= target_tokens or parts == [before.context]
        same = [p.context for p in paragraphs if p.article == before.article and p.context != before.context]
        others = [p for p in parts if p != before.context]
        assert others[: len(same)] == [p for p in others if p in same] or set(same) <= set(parts)  # its article first
    assert distractor_documents(examples, tokenizer, target_tokens, seed=1) == long
    assert distractor_documents(examples, tokenizer, target_tokens, seed=2) != long
    assert distractor_documents(examples, tokenizer, target_tokens, seed=1, limit=3) == long[:3]


def test_needles_are_deterministic_and_exactly_answerable(tiny):
    tokenizer = tiny[1]
    examples = synthetic_squad(20, seed=4)
    needles = needle_examples(examples, tokenizer, 200, n=5, seed=3)
    assert needles == needle_examples(examples, tokenizer, 200, n=5, seed=3)
    assert needles != needle_examples(examples, tokenizer, 200, n=5, seed=4)
    depths = set()
    for needle in needles:
        (value,), (start,) = needle.answers, needle.answer_starts
        assert needle.context[start : start + len(value)] == value and needle.context.count(value) == 1
        assert value.isdigit() and len(value) == 7 and needle.question.endswith("?")
        assert 150 <= len(tokenizer(needle.context, add_special_tokens=False).input_ids) <= 200
        depths.add(round(start / len(needle.context), 1))
    assert len(depths) > 1  # hidden at different depths


def test_long_inputs_beyond_the_model_positions_are_refused(capsys, tmp_path):
    from test_harness_and_cli import _write_squad

    from compressions.cli.main import main

    _write_squad(tmp_path / "squad.json", synthetic_squad(6))
    argv = ["eval", "squad", "--model", "tiny-random-llama", "--data", str(tmp_path / "squad.json"), "--needle", "4096", "--limit", "2"]
    assert main([*argv, "--out", str(tmp_path / "run"), "train_articles=1"]) == 2
    assert "error: --needle: 4096 tokens do not fit the model's 2048 positions" in capsys.readouterr().err
