"""The library API (compressions.api): `load_compressor` returns every family behind one object whose
answers are the SQuAD harness's own, and refuses what does not fit."""

import dataclasses
import json
import runpy

import pytest
import torch
from conftest import REPO

from compressions import load_compressor
from compressions.api import Compressor, GistCompressor
from compressions.cli.main import main
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data.prompts import SquadPromptConfig
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.errors import ConfigError
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.learned_table import table_row
from compressions.experiments.squad_run import evaluate_squad
from compressions.gist.cache import generate
from compressions.models import load_model

TINY = "tiny-random-llama"


def _harness_predictions(tmp_path, examples, **config):
    config = SquadEvalConfig(model=TINY, max_new_tokens=4, prompt=SquadPromptConfig(shots=0), out=str(tmp_path / "eval"), **config)
    evaluate_squad(config, examples, [])
    return [s["prediction"] for s in json.loads((tmp_path / "eval" / "sample_predictions.json").read_text())]


@pytest.mark.parametrize("name, budget", [("prefix", 6), ("snapkv", 6), ("full", None)])
def test_answers_are_the_harness_answers(tmp_path, name, budget):
    examples = synthetic_squad(3, seed=7)
    compressor = load_compressor(name, budget=budget, model=TINY)
    assert isinstance(compressor, Compressor)
    answers = [compressor.answer(e.context, e.question, max_new_tokens=4) for e in examples]
    assert answers == _harness_predictions(tmp_path, examples, method=name, budget=budget)
    kept = compressor.compress(examples[0].context, examples[0].question)
    assert kept.n_tokens == (budget or len(compressor.tokenizer(examples[0].context, add_special_tokens=False).input_ids))


@pytest.mark.parametrize("arch", ["conv", "gist_kv"])
def test_learned_checkpoint_answers_as_the_harness_and_keeps_its_settings(tmp_path, arch):
    llm, tokenizer = load_model(TINY)
    torch.manual_seed(0)
    options = {"compressor": {"hidden_size": 16}} if arch == "conv" else {}
    pipeline = SoftPromptModel.create(PipelineConfig(model=TINY, arch=arch, budget=3, **options), llm, tokenizer)
    pipeline.save_pretrained(tmp_path / "ck")
    compressor = load_compressor(str(tmp_path / "ck"))
    examples = synthetic_squad(2, seed=8)
    answers = [compressor.answer(e.context, e.question, max_new_tokens=4) for e in examples]
    assert answers == _harness_predictions(tmp_path, examples, method="learned", checkpoint=str(tmp_path / "ck"))
    assert compressor.budget == 3 and compressor.prompt == pipeline.config.prompt
    with pytest.raises(ConfigError, match="--budget 8 conflicts with checkpoint .*, trained with budget 3"):
        load_compressor(str(tmp_path / "ck"), budget=8)
    with pytest.raises(ConfigError, match="trained with model tiny-random-llama"):
        load_compressor(str(tmp_path / "ck"), model="smollm2-135m")
    with pytest.raises(ConfigError, match="--reader runs/reader conflicts"):  # the harness: the same rule, before loading
        SquadEvalConfig(method="learned", checkpoint=str(tmp_path / "ck"), reader="runs/reader").validate()


def test_text_methods_read_by_a_learned_checkpoints_decoder(tmp_path):
    """`decoder=`: a text method read by the decoder a checkpoint trained with its own adapter, as the harness
    reads it (`eval squad decoder=`): its answers differ from the plain model's, which a frozen-decoder
    checkpoint is refused for."""
    llm, tokenizer = load_model(TINY)
    config = PipelineConfig(model=TINY, arch="gist_kv", budget=3, use_lora=True, encoder_lora=True)
    pipeline = SoftPromptModel.create(config, llm, tokenizer)
    with torch.no_grad():
        for name, p in pipeline.llm.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
    pipeline.save_pretrained(tmp_path / "ck")
    examples = synthetic_squad(3, seed=7)
    read = load_compressor("prefix", budget=6, decoder=str(tmp_path / "ck"))
    assert read.decoder == str(tmp_path / "ck") and read.model_name == TINY
    prompt = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        torch.testing.assert_close(read.model(input_ids=prompt).logits, pipeline.llm(input_ids=prompt).logits)
        assert not torch.allclose(read.model(input_ids=prompt).logits, load_model(TINY)[0](input_ids=prompt).logits, atol=1e-3)
    answers = [read.answer(e.context, e.question, max_new_tokens=4) for e in examples]
    assert answers == _harness_predictions(tmp_path, examples, method="prefix", budget=6, decoder=str(tmp_path / "ck"))
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["decoder"] == str(tmp_path / "ck")
    assert table_row(tmp_path / "eval")["read_by"] == "decoder of ck"
    SoftPromptModel.create(PipelineConfig(model=TINY, arch="gist_kv", budget=3), *load_model(TINY)).save_pretrained(tmp_path / "frozen")
    with pytest.raises(ConfigError, match="trained for a frozen decoder"):
        load_compressor("prefix", budget=6, decoder=str(tmp_path / "frozen"))
    with pytest.raises(ConfigError, match="reads with its own decoder"):
        SquadEvalConfig(method="learned", checkpoint=str(tmp_path / "ck"), decoder=str(tmp_path / "ck")).validate()


def test_gist_model_compresses_instructions_and_the_quickstart_runs(tmp_path, capsys):
    data = tmp_path / "train.json"
    data.write_text(json.dumps([dataclasses.asdict(e) for e in synthetic_alpaca(4)]))
    common = ["--model", TINY, "--data", str(data), "--k", "2", "train.batch_size=2", "train.micro_batch_size=2"]
    for condition in ("gist", "pos_control"):
        assert main(["gist", "train", "--condition", condition, "--out", str(tmp_path / condition), *common]) == 0
    compressor = load_compressor(str(tmp_path / "gist"))
    assert isinstance(compressor, GistCompressor)
    example = synthetic_alpaca(1, seed=3)[0]
    cache = compressor.compress(example.instruction)
    assert cache.size == 1 and cache.kept == 2
    expected = generate(compressor.model, compressor.tokenizer, cache, [example.input], 5)[0]
    assert compressor.answer(example.instruction, example.input, max_new_tokens=5) == compressor.tokenizer.decode(expected, skip_special_tokens=True).strip()
    with pytest.raises(ConfigError, match="pos_control model"):
        load_compressor(str(tmp_path / "pos_control"))

    llm, tokenizer = load_model(TINY)
    SoftPromptModel.create(PipelineConfig(model=TINY, arch="gist_kv", budget=3), llm, tokenizer).save_pretrained(tmp_path / "ck")
    quickstart = runpy.run_path(str(REPO / "examples" / "quickstart.py"))["main"]
    quickstart(["--model", TINY, "--budget", "8", "--checkpoint", str(tmp_path / "ck"), "--gist", str(tmp_path / "gist")])
    lines = capsys.readouterr().out.splitlines()[-4:]
    assert [line.split(":")[0].strip() for line in lines] == ["extractive", "snapkv", "learned", "gist"]
    assert "kept 8 of" in lines[0] and "<3 gist KV entries" in lines[2] and "2 gist tokens" in lines[3]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: load_compressor("shrink", budget=8), "unknown method 'shrink'"),
        (lambda: load_compressor("prefix"), "needs a token budget"),
        (lambda: load_compressor("full", budget=8), "takes no budget"),
    ],
)
def test_bad_requests_fail_with_a_clear_error(call, message):
    with pytest.raises(Exception, match=message):
        call()


def test_a_folder_that_is_no_method_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="neither a compressor checkpoint nor a gist model"):
        load_compressor(str(tmp_path))
