"""Bootstrap intervals (evaluation/intervals.py) on known cases, and runs compared question by question."""

import json

import numpy as np
import pytest

from compressions.cli.main import main
from compressions.data.synthetic import synthetic_squad
from compressions.evaluation.intervals import bootstrap_ci, compare_runs, paired_difference, retention_ci
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad


def test_interval_of_a_constant_is_the_constant():
    assert bootstrap_ci([0.4] * 50) == pytest.approx((0.4, 0.4))


def test_interval_matches_the_normal_approximation_for_a_large_sample():
    values = np.random.default_rng(1).binomial(1, 0.3, size=2000).astype(float).tolist()
    low, high = bootstrap_ci(values, resamples=4000)
    se = np.std(values) / np.sqrt(len(values))
    assert low == pytest.approx(np.mean(values) - 1.96 * se, abs=0.004)
    assert high == pytest.approx(np.mean(values) + 1.96 * se, abs=0.004)


def test_paired_difference_cancels_what_the_runs_share():
    """Two runs that differ by 0.05 on every example: the paired interval is exactly 0.05, although each
    run alone spreads widely."""
    a = np.random.default_rng(2).uniform(0, 1, size=300)
    out = paired_difference((a + 0.05).tolist(), a.tolist())
    assert out["mean"] == pytest.approx(0.05) and out["low"] == pytest.approx(0.05) and out["high"] == pytest.approx(0.05)
    assert out["p_not_above"] == 0.0
    low, high = bootstrap_ci(a.tolist())
    assert high - low > 0.05


def test_bad_inputs():
    with pytest.raises(ValueError, match="no values"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="same examples"):
        paired_difference([1.0], [1.0, 0.0])


def test_runs_write_scores_and_compare_question_by_question(tmp_path, capsys):
    examples = synthetic_squad(6, seed=3)
    runs = {}
    for method, budget in (("full", None), ("prefix", 4)):
        config = SquadEvalConfig(model="tiny-random-llama", method=method, budget=budget, max_new_tokens=3, out=str(tmp_path / method))
        runs[method] = evaluate_squad(config, examples, examples)
        low, high = runs[method]["f1_ci95"]
        assert low <= runs[method]["f1"] <= high
    full = json.loads((tmp_path / "full" / "scores.json").read_text())
    prefix = json.loads((tmp_path / "prefix" / "scores.json").read_text())
    assert [s["id"] for s in full] == [s["id"] for s in prefix] == [e.id for e in examples]
    out = compare_runs(tmp_path / "full", tmp_path / "prefix")
    assert out["n"] == 6 and out["f1"]["mean"] == pytest.approx(runs["full"]["f1"] - runs["prefix"]["f1"])
    assert main(["eval", "compare", str(tmp_path / "full"), str(tmp_path / "prefix")]) == 0
    assert capsys.readouterr().out.startswith("f1: ")
    assert main(["eval", "compare", str(tmp_path / "full"), str(tmp_path)]) == 2
    assert "has no scores.json" in capsys.readouterr().err
    # a cut-off scores.json, or JSON of another shape: one error line naming the file, exit 2
    cut = tmp_path / "cut"
    cut.mkdir()
    for text, why in ((json.dumps(full)[:40], "cannot be read as JSON"), ('{"f1": 1}', "is not an `eval squad` scores file")):
        (cut / "scores.json").write_text(text)
        assert main(["eval", "compare", str(tmp_path / "full"), str(cut)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{cut / 'scores.json'}" in err and why in err and "Traceback" not in err


def test_retention_interval():
    """Every example's gist score halfway between its controls: retention 0.5 in every resample."""
    pos = np.random.default_rng(4).uniform(0.5, 1, size=100)
    neg = pos - 0.4
    assert retention_ci((neg + 0.2).tolist(), pos.tolist(), neg.tolist()) == pytest.approx((0.5, 0.5))
    assert retention_ci([0.3] * 5, [0.2] * 5, [0.2] * 5) is None  # controls tied: no ratio


def test_table_rows_join_scores_with_the_training_summary(tiny, tmp_path, capsys):
    from compressions.compressors.train import CompressorTrainConfig
    from compressions.config import load_config
    from compressions.experiments.compressor_run import train_compressor
    from compressions.experiments.learned_table import table_row

    examples = synthetic_squad(6, seed=3)
    overrides = ["pipeline.model=tiny-random-llama", "pipeline.arch=pooling", "pipeline.budget=4", "untrained=true",
                 "eval_limit=6", "max_new_tokens=3", f"out={tmp_path / 'run'}"]  # fmt: skip
    summary = train_compressor(load_config(CompressorTrainConfig, overrides=overrides), examples, examples, *tiny, progress=False)
    prefix = SquadEvalConfig(model="tiny-random-llama", method="prefix", budget=4, max_new_tokens=3, out=str(tmp_path / "prefix"))
    baseline = evaluate_squad(prefix, examples, examples)
    row = table_row(tmp_path / "run" / "eval", tmp_path / "prefix")
    assert row["run"] == "run" and row["method"] == "learned-pooling" and row["f1"] == pytest.approx(summary["eval"]["f1"])
    assert row["vs"][0] == pytest.approx(summary["eval"]["f1"] - baseline["f1"])
    assert row["steps"] == 0 and row["cosine_across"] == pytest.approx(summary["validation_collapse"]["cosine_across"])
    assert "steps" not in table_row(tmp_path / "prefix")  # a text method has no training run
    assert row["read_by"] == table_row(tmp_path / "prefix")["read_by"] == "the LLM"
    (tmp_path / "run" / "eval" / "scores.json").unlink()
    assert "vs" not in table_row(tmp_path / "run" / "eval", tmp_path / "prefix")  # nothing to pair: no difference shown
    assert main(["eval", "table", str(tmp_path / "run" / "eval"), str(tmp_path / "prefix"), "--against", str(tmp_path / "prefix")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[3].startswith("| prefix | prefix | 4 |") and "+0.0 [+0.0, +0.0]" in lines[3]
    assert main(["eval", "table", str(tmp_path)]) == 2  # not a finished eval run: one error line
