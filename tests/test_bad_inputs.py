"""Every user error is one `error:` line and exit code 2 (issues 19 and 38), checked where the input enters,
before anything is written, or, once a run folder exists, with that folder marked failed. Each row is a case a
careless or hostile user tried, run through the CLI (or the Python API) on the tiny model and small files
written here."""

import dataclasses
import fcntl
import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch

from compressions.api import ANSWER_TOKENS, load_compressor
from compressions.cli.main import main
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data import load_squad
from compressions.data.prompts import SquadPromptConfig
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.errors import ArgumentError, ConfigError, DataError
from compressions.models import load_model
from compressions.models.tiny import build_tiny_llama
from compressions.store.folder_lock import LOCK_FILE
from compressions.store.run_folder import run_state
from compressions.training.lora import LoraSettings, add_adapter


def _squad(examples, title="A"):
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in examples
    ]
    return {"data": [{"title": title, "paragraphs": paragraphs}]}


def _long_context():
    """One question whose context (about 3,000 tokens) does not fit the tiny model's 2,048 positions."""
    e = synthetic_squad(1)[0]
    filler = " ".join(f"Word{i}" for i in range(1500))
    return dataclasses.replace(e, context=e.context + " " + filler)


def _null_question():
    data = _squad(synthetic_squad(1))
    data["data"][0]["paragraphs"][0]["qas"][0]["question"] = None
    return data


def _one_record(**fields):
    """GOOD_SQUAD with its first question's record changed (on_error=raise makes it the run's error)."""
    data = json.loads(json.dumps(GOOD_SQUAD))
    record = data["data"][0]["paragraphs"][0]
    record.update({k: v for k, v in fields.items() if k == "context"})
    record["qas"][0].update({k: v for k, v in fields.items() if k != "context"})
    return data


def _mostly_malformed():
    data = json.loads(json.dumps(GOOD_SQUAD))
    for paragraph in data["data"][0]["paragraphs"][1:]:
        paragraph["qas"][0]["question"] = None
    return data


def _gzip_cut(data) -> bytes:
    return gzip.compress(json.dumps(data).encode())[:-20]


GOOD_SQUAD = _squad(synthetic_squad(4))
# file name -> content (str: text, bytes: as is, anything else: JSON)
FILES = {
    "squad.json": GOOD_SQUAD,
    "alpaca.json": [dataclasses.asdict(e) for e in synthetic_alpaca(4)],
    "empty.json": "",
    "truncated.json": json.dumps(GOOD_SQUAD)[:50],
    "latin1.json": json.dumps(GOOD_SQUAD).replace("Context", "Caf\u00e9").encode("latin-1", "replace") + b"\xff",
    "truncated.json.gz": _gzip_cut(GOOD_SQUAD),
    "data_ints.json": {"data": [1, 2]},
    "paragraphs_string.json": {"data": [{"title": "A", "paragraphs": "some text"}]},
    "question_null.json": _null_question(),
    "long.json": _squad([_long_context()]),
    "alpaca_mixed.json": [1, "x", None],
    "alpaca_nonstring.json": [{"instruction": 5, "input": "", "output": ["x"]}],
    "alpaca_empty.json": [],
    "broken.yaml": "model: [tiny\nmethod: full\n",
    "list.yaml": "- model: tiny-random-llama\n- method: full\n",
    "a_file": "not a folder",
    "deep.json": "[" * 200_000 + "]" * 200_000,
    "surrogate.json": json.dumps(_one_record(question="\ud800")),  # JSON's escape: a lone surrogate, not UTF-8 text
    "nul.json": json.dumps(_one_record(question="What\u0000?")),
    "int_context.json": _one_record(context=5),
    "mostly_malformed.json": _mostly_malformed(),
    "grid_ok.yaml": "out: gridout\ngroups:\n  - kind: squad\n    base: {model: tiny-random-llama}\n    axes: {method: [none]}\n",
    "grid_nul.yaml": 'out: gridout\ngroups:\n  - kind: squad\n    name: "a\\0{method}"\n    base: {model: tiny-random-llama}\n    axes: {method: [none]}\n',
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The files above, a gist model, a compressor checkpoint and a reader adapter made for another model."""
    root = tmp_path_factory.mktemp("inputs")
    for name, content in FILES.items():
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    alpaca = str(root / "alpaca.json")
    gist = ["gist", "train", "--model", "tiny-random-llama", "--data", alpaca, "--k", "1", "--limit", "4", "--out", str(root / "gist")]
    assert main([*gist, "train.batch_size=4", "train.micro_batch_size=4"]) == 0
    llm, tokenizer = load_model("tiny-random-llama")
    SoftPromptModel.create(PipelineConfig(model="tiny-random-llama", arch="pooling", budget=4), llm, tokenizer).save_pretrained(root / "ck")
    torch.manual_seed(0)  # a reader adapter trained on a narrower model, as its run folder records
    lora = LoraSettings(target_modules=["q_proj", "v_proj"]).peft_config()
    add_adapter(build_tiny_llama(tokenizer, hidden_size=32), lora).save_pretrained(root / "reader")
    (root / "reader" / "config.json").write_text(json.dumps({"model": "tiny-32", "prompt": {}}))
    damage = {"ck_cut_weights": ("compressor.safetensors", 0.5), "ck_empty_weights": ("compressor.safetensors", 0), "ck_cut_config": ("compressor_config.json", 0.5)}
    for name, (file, keep) in damage.items():  # a checkpoint whose file was cut off (a full disk, a killed copy)
        shutil.copytree(root / "ck", root / name)
        data = (root / name / file).read_bytes()
        (root / name / file).write_bytes(data[: int(len(data) * keep)])
    build_tiny_llama(tokenizer).save_pretrained(root / "model_notok")  # weights and config, no tokenizer files
    (root / "datadir").mkdir()
    (root / "users").mkdir()
    (root / "users" / "metrics.json").write_text('{"mine": 1}')
    assert main([_fill(w, {"squad.json": str(root / "squad.json"), "out": str(root / "base")}) for w in squad("--method", "none")]) == 0
    shutil.copytree(root / "base", root / "cut_scores")
    (root / "cut_scores" / "scores.json").write_text((root / "base" / "scores.json").read_text()[:40])
    for cell, file, text in [("ok", None, None), ("none", "metrics.json", '{"f1": 1'), ("prefix-M4", "status.json", "garbage")]:
        shutil.copytree(root / "base", root / "grid_bad" / cell)  # a grid with a cut-off metrics.json and a garbage status.json
        if file:
            (root / "grid_bad" / cell / file).write_text(text)
    return root


def squad(*extra):
    return ["eval", "squad", "--model", "tiny-random-llama", "--data", "{squad.json}", "--split", "all", "--max-new-tokens", "2",
            "--shots", "0", "--out", "{out}", *extra]  # fmt: skip


def gist_eval(*extra):
    return ["gist", "eval", "--base", "tiny-random-llama", "--splits", "{alpaca.json}", "--max-new-tokens", "2", "--out", "{out}", *extra]


def gist_train(*overrides):
    return ["gist", "train", "--model", "tiny-random-llama", "--data", "{alpaca.json}", "--limit", "4", "--out", "{out}",
            "train.batch_size=4", "train.micro_batch_size=4", *overrides]  # fmt: skip


def reader(*overrides):
    return ["train", "reader", "--model", "tiny-random-llama", "--data", "{squad.json}", "--limit", "2", "--max-steps", "1",
            "--out", "{out}", *overrides]  # fmt: skip


# case -> (argv, words of the one error line); {name} is a file or folder of `inputs`, {out} the run folder
CASES = {
    # 1. data files
    "empty data file": (squad("--data", "{empty.json}"), "empty.json cannot be read as JSON: the file is empty"),
    "truncated JSON": (squad("--data", "{truncated.json}"), "truncated.json cannot be read as JSON: JSONDecodeError"),
    "non-UTF-8 data": (squad("--data", "{latin1.json}"), "latin1.json cannot be read as JSON: UnicodeDecodeError"),
    "truncated gzip": (squad("--data", "{truncated.json.gz}"), "truncated.json.gz cannot be read as JSON: EOFError"),
    "data: [1, 2]": (squad("--data", "{data_ints.json}"), "data_ints.json (2 malformed; the first: [article 0]: not an object with a 'paragraphs' list)"),
    "paragraphs a string": (squad("--data", "{paragraphs_string.json}"), "[article 0]: not an object with a 'paragraphs' list"),
    "question null": (squad("--data", "{question_null.json}"), "[article 0, paragraph 0, question 0]: question None is not a non-empty string"),
    "a malformed record with on_error=raise": (squad("--data", "{question_null.json}", "on_error=raise"), "malformed record: {question_null.json} [article 0"),
    "Alpaca [1, 'x', null]": (gist_eval("--splits", "{alpaca_mixed.json}"), "alpaca_mixed.json (3 malformed; the first: [0]: not an object but int)"),
    "Alpaca non-string fields": (gist_train("data={alpaca_nonstring.json}"), "[0]: missing or non-string field(s) instruction, output"),
    # 2. a split with no valid record, before gist eval writes anything
    "gist eval on an empty split": (gist_eval("--splits", "{alpaca_empty.json}"), "no valid record in {alpaca_empty.json} (0 malformed)"),
    # 3. settings
    "--max-new-tokens 0": (squad("--max-new-tokens", "0"), "max_new_tokens must be >= 1, got 0"),
    "--max-new-tokens -3": (squad("--max-new-tokens", "-3"), "max_new_tokens must be >= 1, got -3"),
    "gist eval --max-new-tokens 0": (gist_eval("--max-new-tokens", "0"), "max_new_tokens and batch_size must be >= 1"),
    "dtype=int8": (squad("dtype=int8"), "dtype must be one of float32, bfloat16, float16; got 'int8'"),
    "gist train dtype=int8": (gist_train("dtype=int8"), "dtype must be one of"),
    "on_error=ignore": (squad("on_error=ignore"), "on_error must be one of skip, raise; got 'ignore'"),
    "reader on_error=ignore": (reader("on_error=ignore"), "on_error must be one of skip, raise; got 'ignore'"),
    "--device cuda:99": (squad("--device", "cuda:99"), "device 'cuda:99' is not available here"),
    "--device gpu": (squad("--device", "gpu"), "device 'gpu' is not a device name"),
    "gist eval device=cuda:99": (gist_eval("device=cuda:99"), "device 'cuda:99' is not available here"),
    "train.learning_rate=-1": (gist_train("train.learning_rate=-1"), "train.learning_rate must be > 0, got -1.0"),
    "reader train.learning_rate=0": (reader("train.learning_rate=0"), "train.learning_rate must be > 0, got 0.0"),
    "broken YAML": (squad("--config", "{broken.yaml}"), "config file {broken.yaml} is not readable YAML"),
    "a YAML list": (squad("--config", "{list.yaml}"), "config file {list.yaml} must hold a mapping of keys at its top level, not a ListConfig"),
    # 4. the run folder
    "--out an existing file": (squad("--out", "{a_file}"), "cannot use {a_file} as a run folder: File exists"),
    "--out under a file": (squad("--out", "{a_file}/run"), "cannot use {a_file}/run as a run folder: Not a directory"),
    "gist eval --out under a file": (gist_eval("--out", "{a_file}/run"), "cannot use {a_file}/run as a run folder: Not a directory"),
    # 5. a saved folder in the wrong role, or made for another model
    "a compressor checkpoint as --gist": (gist_eval("--gist", "{ck}"), "--gist {ck} is a compressor checkpoint; it takes a gist model"),
    "a gist model as --pos-control": (gist_eval("--pos-control", "{gist}"), "--pos-control {gist} is a gist model; it takes a pos_control model"),
    "a gist model as --base": (gist_eval("--base", "{gist}"), "--base {gist} is a gist model; it takes a base model"),
    "a base model as --neg-control": (gist_eval("--neg-control", "tiny-random-llama"), "--neg-control tiny-random-llama is not a folder here; it takes a neg_control model"),
    "a gist model as --checkpoint": (squad("--method", "learned", "--checkpoint", "{gist}"), "--checkpoint: {gist} is a gist model"),
    "a reader made for another model": (squad("--reader", "{reader}"), "reader {reader} was trained for model 'tiny-32' and does not fit this one (model.layers.0.self_attn.q_proj has 64 inputs, the adapter 32)"),
    # 6. a budget where none applies, or against the checkpoint's
    "--method full --budget 5": (squad("--method", "full", "--budget", "5"), "--budget: method 'full' keeps everything or nothing and takes no budget (got 5)"),
    "--method none --budget 5": (squad("--method", "none", "--budget", "5"), "--budget: method 'none' keeps everything or nothing and takes no budget"),
    "learned with another --model": (
        squad("--method", "learned", "--checkpoint", "{ck}", "--model", "smollm2-135m"),
        "--model: smollm2-135m conflicts with compressor checkpoint {ck}, trained with model tiny-random-llama",
    ),
    "learned with another --budget": (squad("--method", "learned", "--checkpoint", "{ck}", "--budget", "8"), "--budget: 8 conflicts with compressor checkpoint {ck}, trained with budget 4"),
    # 7. a context longer than the model's window, refused by config
    "a long context, long_context=refuse": (squad("--data", "{long.json}", "long_context=refuse"), "its context has"),
    # issue 38, 1: tracebacks that are now one line
    "JSON nested 200,000 deep": (squad("--data", "{deep.json}"), "deep.json cannot be read as JSON: RecursionError"),
    "diagnose answers on JSON nested 200,000 deep": (["diagnose", "answers", "--data", "{deep.json}"], "deep.json cannot be read as JSON: RecursionError"),
    "train compressor on JSON nested 200,000 deep": (
        ["train", "compressor", "--arch", "conv", "--budget", "4", "--preset", "test", "--model", "tiny-random-llama", "--data", "{deep.json}", "--out", "{out}"],
        "deep.json cannot be read as JSON: RecursionError",
    ),
    "a question holding a lone surrogate": (squad("--data", "{surrogate.json}", "on_error=raise"), "is not a non-empty string of text (no lone surrogate, no NUL)"),
    "a question holding a NUL": (squad("--data", "{nul.json}", "on_error=raise"), "is not a non-empty string of text (no lone surrogate, no NUL)"),
    "a checkpoint whose weights are cut off": (squad("--method", "learned", "--checkpoint", "{ck_cut_weights}"), "compressor.safetensors cannot be read (SafetensorError"),
    "a checkpoint whose weights are empty": (squad("--method", "learned", "--checkpoint", "{ck_empty_weights}"), "compressor.safetensors cannot be read (SafetensorError"),
    "a checkpoint whose config is cut off": (squad("--method", "learned", "--checkpoint", "{ck_cut_config}"), "compressor_config.json cannot be read (JSONDecodeError"),
    "a --model folder with no tokenizer": (squad("--model", "{model_notok}"), "holds no tokenizer"),
    "a grid cell name holding a NUL": (["grid", "{grid_nul.yaml}"], "is not one folder name inside gridout (no '/', no leading '.', no control character)"),
    "grid out=<a file>": (["grid", "{grid_ok.yaml}", "out={a_file}"], "out: cannot use {a_file} as the grid's folder: {a_file} is a file"),
    "eval compare on a cut-off scores.json": (["eval", "compare", "{cut_scores}", "{base}"], "cut_scores/scores.json cannot be read as JSON"),
    "report on a grid with unreadable cells": (["report", "{grid_bad}"], "2 cell(s) of {grid_bad} left out: none (metrics.json unreadable), prefix-M4 (status.json unreadable)"),
    "eval table --out under a file": (["eval", "table", "{base}", "--out", "{a_file}/x.json"], "--out {a_file}/x.json: cannot write the table there"),
    # 3. unchecked budgets and options
    "train compressor --budget 100000": (
        ["train", "compressor", "--arch", "conv", "--budget", "100000", "--preset", "test", "--model", "tiny-random-llama", "--data", "{squad.json}", "--out", "{out}"],
        "--budget: 100000 is more than the model's 2048 positions",
    ),
    "--budget past any model": (squad("--method", "prefix", "--budget", "99999999999999999999"), "--budget: 99999999999999999999 is more than the model's 2048 positions"),
    "--method-option seed=abc": (squad("--method", "random", "--budget", "8", "--method-option", "seed=abc"), "method_options.seed: method 'random' takes an integer, got 'abc'"),
    "--method-option seed=1.5": (squad("--method", "random", "--budget", "8", "--method-option", "seed=1.5"), "method_options.seed: method 'random' takes an integer, got 1.5"),
    "--method-option seed=[1,2]": (squad("--method", "random", "--budget", "8", "--method-option", "seed=[1,2]"), "takes an integer, got [1, 2]"),
    # 4. files of another kind in --out
    "--out holding the user's own metrics.json": (squad("--out", "{users}"), "holds metrics.json that no run wrote"),
    # 5. messages that say what is wrong
    "a folder as --data": (squad("--data", "{datadir}"), "is a folder ({datadir}), not a data file"),
    "an integer context": (squad("--data", "{int_context.json}", "on_error=raise"), "context is int, not a string"),
    "too few solved examples once malformed records are skipped": (
        squad("--data", "{mostly_malformed.json}", "--shots", "2"), "only 1 solved examples among the 1 usable train questions (malformed records were skipped"
    ),
}
# cases found once the model is loaded, in a run folder already made: its status afterwards
WRITES = {
    "a long context, long_context=refuse": "failed", "a reader made for another model": "failed",
    "a checkpoint whose weights are cut off": "failed", "a checkpoint whose weights are empty": "failed",
    "a checkpoint whose config is cut off": "failed", "a --model folder with no tokenizer": "failed",
    "--budget past any model": "failed", "--method-option seed=abc": "failed", "--method-option seed=1.5": "failed",
    "--method-option seed=[1,2]": "failed", "too few solved examples once malformed records are skipped": "failed",
}  # fmt: skip


def _fill(text: str, names: dict[str, str]) -> str:
    """`text` with each {name} replaced by its path."""
    for name, path in names.items():
        text = text.replace("{" + name + "}", path)
    return text


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_exit_2(case, inputs, tmp_path, capsys, monkeypatch):
    argv, words = CASES[case]
    folders = ["gist", "ck", "reader", "ck_cut_weights", "ck_empty_weights", "ck_cut_config", "model_notok", "datadir", "users", "base", "cut_scores", "grid_bad"]
    names = {name: str(inputs / name) for name in [*FILES, *folders]} | {"out": str(tmp_path / "out")}
    monkeypatch.chdir(tmp_path)
    assert main([_fill(word, names) for word in argv]) == 2
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if line.startswith("error")]
    assert "Traceback" not in err and len(said) == 1, err
    assert said[0].startswith("error: ") and _fill(words, names) in said[0]
    if case in WRITES:
        assert run_state(tmp_path / "out") == WRITES[case] and not (tmp_path / "out" / "metrics.json").exists()
    else:
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written: checked before the run began


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda(tmp_path, capsys):
    assert main(["eval", "squad", "--model", "tiny-random-llama", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == "error: device 'cuda' is not available here (0 CUDA devices visible)"


def test_an_unwritable_out(inputs, capsys):
    out = Path("/sys/compressions-test-run")  # read-only, even for root
    try:
        out.mkdir()
        out.rmdir()
        pytest.skip("/sys is writable here")
    except OSError:
        pass
    assert main([_fill(word, {"squad.json": str(inputs / "squad.json"), "out": str(out)}) for word in squad()]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot use {out} as a run folder: ")


def test_a_long_context_is_cut_to_the_window_and_counted(inputs, tmp_path):
    argv = [_fill(word, {"squad.json": str(inputs / "long.json"), "out": str(tmp_path / "out")}) for word in squad()]
    assert main(argv) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["contexts_truncated"] == 1  # cut to what fits 2,048 positions with the prompt and the answer
    assert 2040 <= metrics["mean_prompt_tokens"] + metrics["max_new_tokens"] <= 2048


def test_a_null_question_is_skipped_by_name_not_read_as_none(inputs, tmp_path, caplog):
    data = _null_question()
    data["data"][0]["paragraphs"] += GOOD_SQUAD["data"][0]["paragraphs"]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(data))
    examples = load_squad(str(path), split="all")
    assert len(examples) == 4 and "None" not in {e.question for e in examples}
    assert "skipped malformed record" in caplog.text and "question None is not a non-empty string" in caplog.text


LONG = " ".join(f"Word{i}" for i in range(3000))  # about 6,000 tokens: past the tiny model's 2,048 positions
# case -> (load_compressor's arguments, what is called on it, the library's error class, words of its message)
API_CASES = {
    "a context past the window, long_context=refuse": ({"long_context": "refuse"}, lambda c: c.answer(LONG, "Who?"), DataError, "its context has"),
    "an integer context": ({}, lambda c: c.answer(5, "Who?"), ArgumentError, "context: takes a string or what compress() returned"),
    "an empty question": ({}, lambda c: c.answer("Ada lives in Rome.", ""), ArgumentError, "question: is empty"),
    "a lone surrogate in the question": ({}, lambda c: c.answer("Ada lives in Rome.", "Wh\ud800?"), ArgumentError, "question: holds a lone surrogate"),
    "a NUL in the context": ({}, lambda c: c.compress("Ada\0 lives in Rome.", "Who?"), ArgumentError, "context: holds a lone surrogate or a NUL"),
    "long_context=ignore": ({"long_context": "ignore"}, None, ArgumentError, "long_context: is one of truncate, refuse"),
    "an option of the wrong type": ({"name_or_path": "random", "budget": 8, "seed": "abc"}, None, ArgumentError, "method 'random' takes an integer, got 'abc'"),
}  # fmt: skip


@pytest.mark.parametrize("case", API_CASES)
def test_api_misuse_is_one_error_of_the_library(case, tiny):
    arguments, call, error, words = API_CASES[case]
    arguments = {"name_or_path": "full", "llm": tiny[0], "tokenizer": tiny[1], "prompt": SquadPromptConfig(shots=0), **arguments}
    with pytest.raises(error) as raised:
        call(load_compressor(**arguments))
    assert words in str(raised.value)


@pytest.mark.parametrize("method, budget", [("full", None), ("snapkv", 16)])
def test_api_cuts_a_long_context_to_the_window_as_the_harness_does(method, budget, tiny, caplog):
    compressor = load_compressor(method, budget, llm=tiny[0], tokenizer=tiny[1], prompt=SquadPromptConfig(shots=0))
    compressed = compressor.compress(LONG, "Who?")
    assert "1 context(s) cut at the end to the model's window" in caplog.text
    fits = 2048 - sum(len(part) for part in compressor.layout.ids("Who?")) - ANSWER_TOKENS
    assert (compressed.n_tokens if budget is None else compressed.kv.next_position - len(compressor.layout.ids("Who?")[0])) == fits
    assert isinstance(compressor.answer(compressed, "Who?", max_new_tokens=2), str)


def test_a_damaged_checkpoint_is_one_error_in_the_api(inputs):
    for name, file in [("ck_cut_weights", "compressor.safetensors"), ("ck_cut_config", "compressor_config.json")]:
        with pytest.raises(ConfigError, match=f"{file} cannot be read"):
            load_compressor(str(inputs / name))


def test_a_grid_refuses_a_folder_a_run_holds(inputs, tmp_path, capsys):
    held = tmp_path / "held"
    held.mkdir()
    with open(held / LOCK_FILE, "w") as lock:  # another process's run: its lock taken through another open file
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        argv = ["baselines", "squad", "--methods", "none", "--model", "tiny-random-llama", "--data", str(inputs / "squad.json"),
                "--split", "all", "--max-new-tokens", "2", "--out", str(held)]  # fmt: skip
        assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and f"{held} is in use by another run" in err and "Traceback" not in err
    assert sorted(p.name for p in held.iterdir()) == [LOCK_FILE]  # no cell, summary, table or plot written into it
