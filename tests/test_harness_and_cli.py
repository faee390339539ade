import json

import pytest

from compressions.cli.main import main
from compressions.data.prompts import pick_shots
from compressions.data.synthetic import synthetic_squad
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad

RUN_FILES = {"config.json", "metrics.json", "sample_predictions.json", "scores.json", "environment.json", "status.json", ".lock", "run.log", "tensorboard"}


def _write_squad(path, examples):
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in examples
    ]
    # two articles: the first is train, the second validation (train_articles=1)
    data = {"data": [{"title": "A", "paragraphs": paragraphs[:4]}, {"title": "B", "paragraphs": paragraphs[4:]}]}
    path.write_text(json.dumps(data))


def test_harness_writes_a_complete_run_folder(tiny, tmp_path):
    examples = synthetic_squad(6)
    config = SquadEvalConfig(model="tiny-random-llama", max_new_tokens=4, n_samples=2, out=str(tmp_path / "run"))
    shots = synthetic_squad(4, seed=1)
    metrics = evaluate_squad(config, examples, shots, *tiny, progress=False)
    assert {p.name for p in (tmp_path / "run").iterdir()} == RUN_FILES
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(metrics))
    for key in ("f1", "exact_match", "n", "method", "budget", "mean_context_tokens", "mean_prompt_tokens", "seconds_per_example"):
        assert key in saved
    assert saved["n"] == 6 and saved["budget"] is None and saved["compression_ratio"] == 1.0
    samples = json.loads((tmp_path / "run" / "sample_predictions.json").read_text())
    assert len(samples) == 2 and samples[0]["references"] == examples[0].answers
    assert examples[0].context in samples[0]["prompt"]
    assert all(s.context in samples[0]["prompt"] for s in pick_shots(shots, config.prompt.shots))


def test_none_method_drops_the_context(tiny, tmp_path):
    examples = synthetic_squad(3)
    config = SquadEvalConfig(model="tiny-random-llama", method="none", max_new_tokens=2, out=str(tmp_path / "none"))
    metrics = evaluate_squad(config, examples, synthetic_squad(4, seed=1), *tiny, progress=False)
    assert metrics["mean_kept_tokens"] == 0 and metrics["compression_ratio"] is None
    sample = json.loads((tmp_path / "none" / "sample_predictions.json").read_text())[0]
    assert examples[0].context not in sample["prompt"] and examples[0].question in sample["prompt"]


def test_cli_eval_and_baselines(tmp_path, capsys):
    data = tmp_path / "squad.json"
    _write_squad(data, synthetic_squad(8))
    common = ["--model", "tiny-random-llama", "--data", str(data), "train_articles=1", "max_new_tokens=3"]
    assert main(["eval", "squad", "--method", "none", "--out", str(tmp_path / "one"), *common]) == 0
    assert json.loads((tmp_path / "one" / "metrics.json").read_text())["n"] == 4
    assert main(["baselines", "squad", "--methods", "full", "none", "--out", str(tmp_path / "grid"), *common]) == 0
    summary = json.loads((tmp_path / "grid" / "results_summary.json").read_text())
    assert [row["method"] for row in summary] == ["full", "none"]
    assert "| full |" in (tmp_path / "grid" / "results.md").read_text()
    assert "| none |" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "squad", "--method", "magic"], "unknown method 'magic'"),
        (["eval", "squad", "--data", "missing.json"], "data 'missing.json' not found"),
        (["eval", "squad", "limit=0"], "limit must be >= 1"),
        (["eval", "squad", "nope=1"], "Key 'nope' not in"),
    ],
)
def test_cli_bad_input_is_one_error_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--model", "tiny-random-llama", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_every_subcommand_has_help(capsys):
    for argv in (["--help"], ["eval", "squad", "--help"], ["baselines", "squad", "--help"], ["diagnose", "answers", "--help"]):
        with pytest.raises(SystemExit) as code:
            main(argv)
        assert code.value.code == 0
    assert "answer-length" in capsys.readouterr().out


def test_rows_are_labelled_with_the_method_asked_for(tiny, tmp_path):
    # extractive-embedding is the extractive class with another ranker: its rows must not read "extractive"
    examples = synthetic_squad(3)
    options = {"abstractive": {"batch_size": 2}}  # the harness's one batched call: batches of 2 and 1
    for name in ("extractive", "extractive-embedding", "abstractive"):
        config = SquadEvalConfig(
            model="tiny-random-llama", method=name, budget=8, method_options=options.get(name, {}), max_new_tokens=1,
            out=str(tmp_path / name),
        )  # fmt: skip
        metrics = evaluate_squad(config, examples, synthetic_squad(4, seed=1), *tiny, progress=False)
        assert metrics["method"] == name and metrics["n"] == 3 and metrics["mean_kept_tokens"] <= 8
        assert 0 < metrics["compress_seconds_per_example"] <= metrics["seconds_per_example"]


def test_compressed_cache_is_reused_by_a_run_that_differs_only_in_answering(tiny, tmp_path):
    examples, shots = synthetic_squad(5), synthetic_squad(4, seed=1)

    def run(name, **changes):
        settings = {"method": "perplexity", "budget": 8, "max_new_tokens": 2, "compressed_cache": str(tmp_path / "cache")}
        config = SquadEvalConfig(model="tiny-random-llama", out=str(tmp_path / name), **(settings | changes))
        metrics = evaluate_squad(config, examples, shots, *tiny, progress=False)
        return metrics, json.loads((tmp_path / name / "sample_predictions.json").read_text())

    first, first_samples = run("first")
    second, second_samples = run("second", max_new_tokens=3)  # answering differs, compressing does not
    assert first["compressions_reused"] == 0 and second["compressions_reused"] == 5
    assert [s["prompt"] for s in second_samples] == [s["prompt"] for s in first_samples]
    assert second["compress_seconds_per_example"] == first["compress_seconds_per_example"]  # the cost when made
    assert second["seconds_per_example"] >= second["compress_seconds_per_example"]
    assert run("other-budget", budget=6)[0]["compressions_reused"] == 0
    [cache_file] = [p for p in (tmp_path / "cache").iterdir() if p.name.startswith("perplexity-M8-")]
    assert len(cache_file.read_text().splitlines()) == 5


def test_compressed_cache_survives_a_torn_last_line(tmp_path):
    from compressions.evaluation.compressed_cache import CompressedCache
    from compressions.methods.base import CompressedContext

    identity = {"method": "prefix", "budget": 4}
    cache = CompressedCache(tmp_path, identity)
    cache.put("c1", "q1", CompressedContext([1, 2], "ab", 0.5))
    with open(cache.path, "a") as f:
        f.write('{"key": "torn')  # a kill mid-write
    again = CompressedCache(tmp_path, identity)
    assert again.get("c1", "q1") == CompressedContext([1, 2], "ab", 0.5) and again.get("c2", "q2") is None
    again.put("c2", "q2", CompressedContext([3], "c", 0.1))
    assert CompressedCache(tmp_path, identity).get("c2", "q2").token_ids == [3]
    assert CompressedCache(tmp_path, identity | {"budget": 5}).get("c1", "q1") is None  # another budget, another file
