"""The scripts in benchmarks/ run end to end on the tiny model and synthetic data (their numbers are not checked,
only their accounting: rows, ratios, and the JSON beside the table)."""

import copy
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from compressions.benchmarks import alpaca_examples
from compressions.compressors.method import LearnedContext
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.evaluation.efficiency import count_flops, kv_bytes
from compressions.gist.config import GistConfig
from compressions.gist.data import training_example
from compressions.gist.tokens import add_gist_token
from compressions.gist.train import prepare_training
from compressions.models import load_model

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


def test_train_throughput_script_counts_every_real_token_once_in_each_setting(tmp_path, tiny_args):
    script = _script("train_throughput")
    options = ["--n", "10", "--batch-size", "4", "--out", str(tmp_path / "t.json")]
    args = script.build_parser().parse_args(tiny_args + options)  # the last --n wins
    rows = script.main(args)
    assert [(r["setting"], r["batch"]) for r in rows] == [("random", 1), ("random", 4), ("length-grouped", 4), ("sorted", 4)]
    examples, _ = alpaca_examples("alpaca_plus_train", str(tmp_path / "none"), 10)
    model, tokenizer = load_model("tiny-random-llama")
    gist_id = add_gist_token(model, tokenizer)
    real = sum(len(training_example(tokenizer, e, 1, gist_id)["input_ids"]) for e in examples)
    assert all(r["examples"] == 10 and r["tokens"] == real for r in rows)  # no example dropped or repeated
    batch_1, shuffled, grouped, ordered = rows
    assert batch_1["padded_tokens"] == real and batch_1["steps"] == 10 and shuffled["steps"] == 3
    assert ordered["padded_tokens"] <= min(shuffled["padded_tokens"], grouped["padded_tokens"])
    assert batch_1["vs_batch_1"] == 1.0
    assert json.loads((tmp_path / "t.json").read_text())["rows"] == rows


def test_train_throughput_leaves_the_weights_as_they_were():
    script = _script("train_throughput")
    model, tokenizer = load_model("tiny-random-llama")
    module, dataset, collate = prepare_training(model, tokenizer, synthetic_alpaca(4), GistConfig())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    row = script.measure(module, dataset, collate, GistConfig(), script.index_batches([1, 2, 3, 4], 2, "sorted", 0), warmup=1)
    assert row["steps"] == 2 and all(torch.equal(before[k], v) for k, v in module.state_dict().items())


def test_squad_compressors_script_accounts_kv_bytes_and_compression(tmp_path, tiny_args):
    script = _script("squad_compressors")
    args = script.build_parser().parse_args(tiny_args + ["--budget", "4", "--new-tokens", "2", "--out", str(tmp_path / "s.json")])
    rows = {r["method"]: r for r in script.main(args)}
    kv_methods = ["streaming", "knorm", "snapkv", "tova"]
    assert list(rows) == ["full", "prefix", "extractive", "perplexity", *kv_methods, "learned-cross_attention"]
    model, _ = load_model("tiny-random-llama")
    full, learned = rows["full"], rows["learned-cross_attention"]
    assert learned["context_tokens"] == 4 and learned["context_kv_bytes"] == kv_bytes(model.config, model.dtype, 4)
    assert full["context_tokens"] > 4 and full["context_kv_bytes"] == kv_bytes(model.config, model.dtype, 1) * full["context_tokens"]
    assert rows["prefix"]["compress_gflops"] == rows["extractive"]["compress_gflops"] == full["compress_gflops"] == 0
    assert rows["perplexity"]["compress_gflops"] > 0 and learned["compress_gflops"] > 0  # an LM / a compressor ran
    assert full["flops_vs_full"] == full["kv_vs_full"] == 1.0 and rows["prefix"]["gflops"] < full["gflops"]
    for name in kv_methods:  # M entries per layer and head, paid for by a prefill of the whole context
        assert rows[name]["context_tokens"] == 4 and rows[name]["context_kv_bytes"] == learned["context_kv_bytes"]
        assert rows[name]["compress_gflops"] > 0 and rows[name]["gflops"] - rows[name]["compress_gflops"] < full["gflops"]
    assert json.loads((tmp_path / "s.json").read_text())["rows"] == list(rows.values())


def test_a_small_learned_compressor_costs_less_than_reading_a_long_context(tiny):
    script = _script("squad_compressors")
    model, tokenizer = tiny
    config = PipelineConfig(model="tiny-random-llama", arch="pooling", budget=2, compressor={"hidden_size": 16})
    learned = LearnedContext(SoftPromptModel.create(config, copy.deepcopy(model), tokenizer))
    context = " ".join(e.context for e in synthetic_squad(20))  # about 700 tokens
    compressed = learned.compress(context, "Who?", 2)
    full_ids = tokenizer("Context: " + context).input_ids
    soft_ids = tokenizer("Context: ").input_ids + compressed.token_ids
    reader = learned.pipeline.llm
    read_full = count_flops(reader, lambda: script.answer(reader, full_ids, None, 2, tokenizer.pad_token_id))
    soft = (len(soft_ids) - 2, compressed.embeddings)  # the slot: the last 2 ids
    read_soft = count_flops(reader, lambda: script.answer(reader, soft_ids, soft, 2, tokenizer.pad_token_id))
    compress = count_flops(reader, lambda: learned.compress(context, "Who?", 2))
    assert 0 < compress and compress + read_soft < read_full


def test_shared_prefix_script(tmp_path, tiny_args):
    script = _script("shared_prefix")
    rows = script.main(script.build_parser().parse_args(tiny_args + ["--new-tokens", "3", "--batch-size", "2", "--out", str(tmp_path / "s.json")]))
    whole, shared = rows
    assert (whole["share_prefix"], shared["share_prefix"]) == (False, True) and whole["time_vs_whole"] == 1.0
    assert whole["same_answers"] == "4 / 4" and shared["same_answers"] == "4 / 4"
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["rows"] == rows and int(saved["facts"]["shared head"].split()[0]) > 0


def test_capacity_probe_script(tmp_path, tiny_args):
    script = _script("capacity_probe")
    args = script.build_parser().parse_args(tiny_args + ["--budget", "3", "--steps", "4", "--max-new-tokens", "3", "--out", str(tmp_path / "c.json")])
    args.n = 2
    rows = script.main(args)
    assert [r["context"] for r in rows] == ["full context", "prefix (first 3 tokens)", "3 crammed vectors"]
    prefix, crammed = rows[1], rows[2]
    # the vectors start as the prefix's embeddings and move: their norm changes; regeneration does not get worse
    assert crammed["soft_norm"] != pytest.approx(prefix["soft_norm"])
    assert crammed["reconstruction_accuracy"] >= prefix["reconstruction_accuracy"]
    assert rows[0]["reconstruction_accuracy"] is None
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["rows"] == rows and "synthetic_squad" in saved["facts"]["paragraphs / questions"]


def test_answer_position_splits_scores_at_the_first_m_tokens(tiny):
    script = _script("answer_position")
    tokenizer = tiny[1]
    context = "Paris is the capital of France and its largest city."
    ids = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    start = context.index("France")
    token = script.answer_token_start(tokenizer, context, start)
    assert ids.offset_mapping[token][0] <= start < ids.offset_mapping[token][1]
    assert script.answer_token_start(tokenizer, context, 0) == 0
    scores = [{"id": "a", "f1": 1.0}, {"id": "b", "f1": 0.5}, {"id": "c", "f1": 0.0}]
    split = script.split_scores(scores, {"a": True, "b": True, "c": False})
    assert (split["f1_within"], split["n_within"], split["f1_after"], split["n_after"]) == (75.0, 2, 0.0, 1)
    assert split["ci_after"] == [0.0, 0.0]


def test_documents_script(tmp_path, tiny_args):
    """Per document size: full first, every method's amortised time is its answer time plus its compression
    shared by the questions (question-agnostic) or paid by each (question-aware)."""
    script = _script("documents")
    argv = ["--lengths", "64,160", "--budget", "6", "--questions", "4", "--new-tokens", "2", "--n", "1", "--out", str(tmp_path / "d.json")]
    rows = script.main(script.build_parser().parse_args(tiny_args + argv))
    assert [(r["length"], r["method"]) for r in rows] == [(n, m) for n in (64, 160) for m in ("full", "prefix", "streaming", "kvzip", "snapkv")]
    for row in rows:
        share = 1 if row["question_aware"] else 4
        assert row["amortised_s"] == pytest.approx(row["answer_s"] + row["compress_s"] / share)
    full, kvzip = rows[5], rows[8]
    assert full["compress_s"] == 0 and full["vs_full"] == 1 and kvzip["kv_mib"] < full["kv_mib"]
    assert json.loads((tmp_path / "d.json").read_text())["rows"] == rows
