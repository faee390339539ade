"""Gist training on the tiny model: what each mode trains, saving and reloading, the CLI."""

import json

import pytest
import torch

from compressions.data.alpaca import AlpacaExample
from compressions.data.synthetic import synthetic_alpaca
from compressions.gist.config import GistConfig
from compressions.gist.data import GistCollator, completion_ids, prompt_ids, training_example
from compressions.gist.train import build_dataset, gist_loss, prepare_model, train_gist
from compressions.models import load_model
from compressions.training.config import TrainConfig
from compressions.training.loop import train


def _config(mode="full", condition="gist", **kw):
    train_config = TrainConfig(learning_rate=1e-2, warmup_ratio=0, max_steps=1, batch_size=4, micro_batch_size=2)
    return GistConfig(model="tiny-random-llama", mode=mode, condition=condition, num_gist=2, train=train_config, **kw)


@pytest.fixture(scope="module")
def gist_tokenizer():
    model, tokenizer = load_model("tiny-random-llama")
    return tokenizer, prepare_model(model, tokenizer, _config())[1]


def test_prompt_layout_and_labels(gist_tokenizer):
    tokenizer, gist_id = gist_tokenizer
    with_input = AlpacaExample("Name the colour.", "Kalomir kept a fox.", "red")
    without = AlpacaExample("Say hello.", "", "Hello!")
    ids = prompt_ids(tokenizer, with_input, 2, gist_id)
    assert tokenizer.decode(ids) == "Instruction: Name the colour.\n<GIST><GIST>\nInput: Kalomir kept a fox.\nOutput:"
    assert ids.count(gist_id) == 2
    assert tokenizer.decode(prompt_ids(tokenizer, without, 1, gist_id)) == "Instruction: Say hello.\n<GIST>\nOutput:"
    assert tokenizer.decode(prompt_ids(tokenizer, with_input, 0, None)) == "Instruction: Name the colour.\nInput: Kalomir kept a fox.\nOutput:"
    row = training_example(tokenizer, with_input, 2, gist_id)
    completion = completion_ids(tokenizer, with_input.output)
    assert completion[-1] == tokenizer.eos_token_id and tokenizer.decode(completion[:-1]) == " red"
    assert row["input_ids"] == ids + completion
    assert row["labels"] == [-100] * len(ids) + completion
    cut = training_example(tokenizer, with_input, 2, gist_id, max_length=len(ids) + 1)
    assert cut["labels"] == [-100] * len(ids) + completion[:1]


def test_chat_format_wraps_the_same_text(gist_tokenizer):
    tokenizer, gist_id = gist_tokenizer
    example = AlpacaExample("Name the colour.", "Kalomir kept a fox.", "red")
    text = tokenizer.decode(prompt_ids(tokenizer, example, 1, gist_id, "chat"))
    assert text == "<|im_start|>user\nInstruction: Name the colour.\n<GIST>\nInput: Kalomir kept a fox.<|im_end|>\n<|im_start|>assistant\n"
    assert tokenizer.decode(completion_ids(tokenizer, "red", "chat")) == "red<|im_end|>"


@pytest.mark.parametrize("mode", ["full", "lora", "frozen"])
def test_every_trainable_parameter_changes(mode):
    model, tokenizer = load_model("tiny-random-llama")
    config = _config(mode)
    module, gist_id = prepare_model(model, tokenizer, config)
    trainable = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    assert trainable and (mode == "full") == (len(trainable) == len(list(module.parameters())))
    dataset = build_dataset(tokenizer, synthetic_alpaca(8), config, gist_id)
    config.train.max_steps = 3
    collate = GistCollator(tokenizer.pad_token_id, gist_id, config.condition)
    history = train(module, [{"params": [p for p in module.parameters() if p.requires_grad]}], gist_loss, dataset, collate, config.train, progress=False)
    assert len(history) == 3
    changed = {n: not torch.equal(trainable[n], p) for n, p in module.named_parameters() if p.requires_grad}
    assert all(changed.values()), [n for n, c in changed.items() if not c]
    # merging the adapters gives the model that was trained (the gist row is in the tied head too)
    batch = collate(dataset[:2])
    module.eval()
    with torch.no_grad():
        trained = gist_loss(module, batch)[0]
        merged = module if mode == "full" else module.merge_and_unload()
        torch.testing.assert_close(gist_loss(merged, batch)[0], trained, atol=1e-5, rtol=1e-5)


def test_frozen_mode_changes_only_the_gist_row(tmp_path):
    model, tokenizer = load_model("tiny-random-llama")
    reference, reference_tokenizer = load_model("tiny-random-llama")
    gist_id = prepare_model(reference, reference_tokenizer, _config("full"))[1]  # same vocab, untrained
    train_gist(_config("frozen", out=str(tmp_path / "run")), synthetic_alpaca(8), model, tokenizer, progress=False)
    after, before = model.state_dict(), reference.state_dict()
    assert after.keys() == before.keys()
    for name, value in after.items():
        if value.shape[0] == len(tokenizer):  # embedding (and the tied head)
            assert torch.equal(value[:gist_id], before[name][:gist_id]), name
            assert not torch.equal(value[gist_id], before[name][gist_id]), name
        else:
            assert torch.equal(value, before[name]), name


def test_trained_model_saves_and_reloads_with_its_gist_token(tmp_path):
    model, tokenizer = load_model("tiny-random-llama")
    config = _config("lora", condition="neg_control", out=str(tmp_path / "run"))
    summary = train_gist(config, synthetic_alpaca(8), model, tokenizer, progress=False)
    assert summary["steps"] == 2 and summary["examples"] == 8  # 8 examples / batch 4, one epoch
    run = tmp_path / "run"
    assert {"config.json", "metrics.json", "environment.json", "run.log", "train_log.jsonl", "model"} <= {p.name for p in run.iterdir()}
    reloaded, reloaded_tokenizer = load_model(summary["model_dir"])
    assert reloaded_tokenizer.convert_tokens_to_ids("<GIST>") == len(tokenizer) - 1
    saved = json.loads((run / "model" / "gist_config.json").read_text())
    assert saved["condition"] == "neg_control" and saved["num_gist"] == 2
    ids = torch.tensor([prompt_ids(tokenizer, synthetic_alpaca(1)[0], 2, len(tokenizer) - 1)])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)


def test_bad_config_names_the_field():
    from compressions.errors import ConfigError

    for bad, field in [({"num_gist": 3}, "num_gist"), ({"mode": "half"}, "mode"), ({"condition": "x"}, "condition"), ({"preset": "huge"}, "preset")]:
        with pytest.raises(ConfigError, match=field):
            GistConfig(**bad).validate()
