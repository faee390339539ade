"""The scripts in benchmarks/ run end to end on the tiny model and synthetic data (their numbers are not checked,
only their accounting: rows, ratios, and the JSON beside the table)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tiny_args(tmp_path):
    return ["--model", "tiny-random-llama", "--n", "4", "--min-run-time", "0.01", "--data-dir", str(tmp_path / "none")]


def test_gist_prefill_script(tmp_path, tiny_args):
    script = _script("gist_prefill")
    rows = script.main(script.build_parser().parse_args(tiny_args + ["--batch-size", "2", "--out", str(tmp_path / "p.json")]))
    assert [(r["batch"], r["path"]) for r in rows] == [(b, p) for b in (1, 2) for p in ("full", "instruction", "gist")]
    for batch in (1, 2):
        full, instruction, gist = (r for r in rows if r["batch"] == batch)
        assert gist["gflops"] < instruction["gflops"] < full["gflops"] and full["flops_vs_full"] == 1.0
        assert 0 < gist["cached_kv_bytes"] < instruction["cached_kv_bytes"] and full["cached_kv_bytes"] == 0
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["rows"] == rows and saved["facts"]["data"].startswith("synthetic_alpaca")


def test_gist_end_to_end_script(tmp_path, tiny_args):
    script = _script("gist_end_to_end")
    args = script.build_parser().parse_args(tiny_args + ["--new-tokens", "4", "--batch-size", "2", "--out", str(tmp_path / "e.json")])
    rows = script.main(args)
    full = rows[0]
    assert full["path"] == "full" and full["flops_vs_full"] == 1.0
    gist = {r["reuses"]: r for r in rows if r["path"] == "gist"}
    instruction = {r["reuses"]: r for r in rows if r["path"] == "instruction"}
    assert sorted(gist) == sorted(instruction) == [1, 10, 100]
    assert all(instruction[r]["flops_vs_instruction"] == 1.0 for r in (1, 10, 100))
    assert gist[100]["gflops"] < instruction[100]["gflops"]  # amortised, reading K gists beats reading P instruction tokens
    assert gist[1]["gflops"] > gist[10]["gflops"] > gist[100]["gflops"] and gist[100]["gflops"] < full["gflops"]
    assert json.loads((tmp_path / "e.json").read_text())["rows"] == rows
