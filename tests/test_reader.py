import dataclasses
import json

import pytest
import torch

from compressions.cli.main import main
from compressions.data.documents import pack_documents
from compressions.data.prompts import SquadPrompt, SquadPromptConfig
from compressions.data.synthetic import synthetic_squad
from compressions.errors import ConfigError, ModelNotFoundError
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.squad_run import evaluate_squad
from compressions.models import load_model
from compressions.reader.adapter import load_reader
from compressions.reader.config import ReaderConfig
from compressions.reader.train import IGNORE, collate, reader_example, train_reader
from compressions.training.config import TrainConfig
from compressions.training.lora import add_adapter

PROMPT = SquadPromptConfig("completion")


def test_reader_example_masks_everything_but_the_answer(tiny):
    tokenizer = tiny[1]
    example = synthetic_squad(1)[0]
    row = reader_example(tokenizer, example, PROMPT)
    prompt = SquadPrompt(tokenizer, PROMPT).with_context(example.question, tokenizer(example.context, add_special_tokens=False).input_ids)
    answer = tokenizer(" " + example.answers[0], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    assert row["input_ids"] == prompt + answer
    assert row["labels"] == [IGNORE] * len(prompt) + answer
    batch = collate([row, {"input_ids": [7, 8], "labels": [IGNORE, 8]}], pad_id=0)
    assert batch["input_ids"][1].tolist() == [7, 8] + [0] * (len(prompt) + len(answer) - 2)
    assert batch["attention_mask"].sum(1).tolist() == [len(prompt) + len(answer), 2]
    assert batch["labels"][1].tolist() == [IGNORE, 8] + [IGNORE] * (len(prompt) + len(answer) - 2)


def _config(tmp_path, steps=25):
    train = TrainConfig(learning_rate=1e-2, max_steps=steps, batch_size=4, micro_batch_size=2, warmup_ratio=0, log_every=100)
    return ReaderConfig(model="tiny-random-llama", prompt=PROMPT, train=train, out=str(tmp_path / "reader"))


def test_reader_training_moves_every_lora_parameter_and_lowers_the_loss(tmp_path):
    config = _config(tmp_path, steps=40)
    initial = add_adapter(load_model("tiny-random-llama")[0], _seeded_lora(config))
    model, tokenizer = load_model("tiny-random-llama")  # a fresh copy: training wraps it in place
    examples = synthetic_squad(8)
    batch = collate([reader_example(tokenizer, e, PROMPT) for e in examples], tokenizer.pad_token_id)
    with torch.no_grad():
        loss_before = model(**batch).loss.item()
    history = train_reader(config, examples, model, tokenizer, progress=False)
    with torch.no_grad():
        loss_after = model(**batch).loss.item()
    # the tiny model's frozen tied embeddings (std 0.02) cap its logits: the loss cannot fall far below ~5.6
    assert loss_after < loss_before - 0.5 and history[-1]["loss"] < history[0]["loss"] - 0.3
    saved = {p.name for p in (tmp_path / "reader").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "metrics.json", "train_log.jsonl"} <= saved
    # every LoRA matrix moved away from its (seeded) initialisation: B starts at zero, A at random
    reloaded = load_reader(load_model("tiny-random-llama")[0], tmp_path / "reader")
    before = {n: p for n, p in initial.named_parameters() if "lora_" in n}
    after = {n: p for n, p in reloaded.named_parameters() if "lora_" in n}
    assert len(after) == 2 * 4 * 2 and after.keys() == before.keys()  # A and B x 4 projections x 2 layers
    assert all(not torch.equal(after[n], before[n]) for n in after)
    # the saved adapter reproduces the trained model's logits
    ids = torch.tensor([reader_example(tokenizer, examples[0], PROMPT)["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_reader_trains_on_documents_when_asked(tmp_path):
    """`documents=N`: the questions read the packed documents of their article, and the run says what was packed."""
    model, tokenizer = load_model("tiny-random-llama")
    examples = [dataclasses.replace(e, article="A") for e in synthetic_squad(6)]
    config = dataclasses.replace(_config(tmp_path, steps=1), documents=10_000)
    train_reader(config, examples, model, tokenizer, progress=False)
    metrics = json.loads((tmp_path / "reader" / "metrics.json").read_text())
    assert metrics["documents"] == pack_documents(examples, tokenizer, 10_000)[1].as_dict() | {"max_tokens": 10_000}
    assert metrics["documents"]["documents"] == 1 and metrics["documents"]["paragraphs"] == 6
    with pytest.raises(ConfigError, match="documents must be >= 1"):
        ReaderConfig(documents=0).validate()


def _seeded_lora(config):
    torch.manual_seed(config.train.seed)
    return config.lora.peft_config(task_type="CAUSAL_LM")


def test_harness_loads_the_reader_and_records_it(tmp_path):
    model, tokenizer = load_model("tiny-random-llama")
    examples = synthetic_squad(4)
    train_reader(_config(tmp_path, steps=2), examples, model, tokenizer, progress=False)
    config = SquadEvalConfig(model="tiny-random-llama", prompt=PROMPT, max_new_tokens=3, reader=str(tmp_path / "reader"), out=str(tmp_path / "eval"))
    plain, tok = load_model("tiny-random-llama")
    metrics = evaluate_squad(config, examples, examples, plain, tok, progress=False)
    assert metrics["reader"] == str(tmp_path / "reader")
    assert json.loads((tmp_path / "eval" / "config.json").read_text())["reader"] == str(tmp_path / "reader")


def test_reader_errors(tmp_path):
    with pytest.raises(ModelNotFoundError, match="expected adapter_config.json"):
        load_reader(load_model("tiny-random-llama")[0], tmp_path)
    with pytest.raises(ConfigError, match="prompt.shots must be 0"):
        ReaderConfig(prompt=SquadPromptConfig(shots=2)).validate()


def test_cli_train_reader_then_eval_with_it(tmp_path, capsys):
    data = tmp_path / "squad.json"
    paragraphs = [
        {"context": e.context, "qas": [{"id": e.id, "question": e.question, "answers": [{"text": e.answers[0], "answer_start": e.answer_starts[0]}]}]}
        for e in synthetic_squad(8)
    ]
    data.write_text(json.dumps({"data": [{"title": "A", "paragraphs": paragraphs[:4]}, {"title": "B", "paragraphs": paragraphs[4:]}]}))
    common = ["--model", "tiny-random-llama", "--data", str(data)]
    reader = tmp_path / "reader"
    argv = ["train", "reader", *common, "--max-steps", "2", "--out", str(reader), "train_articles=1", "train.batch_size=2", "train.micro_batch_size=2"]
    assert main(argv) == 0
    assert "loss" in capsys.readouterr().out
    grid = ["baselines", "squad", *common, "--reader", str(reader), "--out", str(tmp_path / "grid"), "train_articles=1", "max_new_tokens=2"]
    assert main([*grid, "--methods", "none", "random", "--budgets", "4", "--method-option", "random.seed=3"]) == 0
    rows = json.loads((tmp_path / "grid" / "results_summary.json").read_text())
    assert [(r["method"], r["budget"], r["reader"]) for r in rows] == [("none", None, str(reader)), ("random", 4, str(reader))]
    saved = json.loads((tmp_path / "grid" / "random-M4-reader" / "config.json").read_text())
    assert saved["method_options"] == {"seed": 3}
    # the reader reads with its zero-shot training prompt, not the harness's default 2 solved examples
    assert saved["prompt"]["shots"] == 0
    sample = json.loads((tmp_path / "grid" / "random-M4-reader" / "sample_predictions.json").read_text())[0]
    assert sample["prompt"].count("Context:") == 1
    assert main([*grid, "--methods", "random", "--method-option", "prefix.seed=3"]) == 2
    assert "expected METHOD.key=value" in capsys.readouterr().err


@pytest.mark.slow
def test_full_context_answers_easy_questions_and_no_context_does_not(smollm2, tmp_path):
    examples, shots = synthetic_squad(8, seed=1), synthetic_squad(4, seed=2)
    prompt = SquadPromptConfig("completion", shots=2)
    scores = {}
    for method in ("full", "none"):
        config = SquadEvalConfig(method=method, prompt=prompt, max_new_tokens=6, out=str(tmp_path / method))
        scores[method] = evaluate_squad(config, examples, shots, *smollm2, progress=False)["exact_match"]
    assert scores["full"] >= 75.0 and scores["none"] <= 25.0, scores
