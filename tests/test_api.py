"""The library API (compressions.api): `load_compressor` returns every family behind one object whose
answers are the SQuAD harness's own, and refuses what does not fit."""

import dataclasses
import json
import runpy

import pytest
import torch
from conftest import REPO
from transformers import DynamicCache

from compressions import load_compressor
from compressions.api import Compressor
from compressions.cli.main import main
from compressions.compressors.pipeline import PipelineConfig, SoftPromptModel
from compressions.data.prompts import SquadPromptConfig
from compressions.data.synthetic import synthetic_alpaca, synthetic_squad
from compressions.errors import ConfigError
from compressions.evaluation.reading import first_line
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.experiments.learned_table import table_row
from compressions.experiments.squad_run import evaluate_squad
from compressions.gist.cache import generate
from compressions.gist.compressor import GistCompressor
from compressions.models import load_model

TINY = "tiny-random-llama"


def _harness_predictions(tmp_path, examples, **config):
    config = SquadEvalConfig(model=TINY, max_new_tokens=4, prompt=SquadPromptConfig(shots=0), out=str(tmp_path / "eval"), **config)
    evaluate_squad(config, examples, [])
    return [s["prediction"] for s in json.loads((tmp_path / "eval" / "sample_predictions.json").read_text())]


@pytest.mark.parametrize("name, budget", [("prefix", 6), ("snapkv", 6), ("kvzip", 6), ("expected_attention", 6), ("full", None)])
def test_answers_are_the_harness_answers(tmp_path, name, budget):
    examples = synthetic_squad(3, seed=7)
    compressor = load_compressor(name, budget=budget, model=TINY, prompt=SquadPromptConfig(shots=0))
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
    with pytest.raises(ConfigError, match="budget: 8 conflicts with compressor checkpoint .*, trained with budget 3"):
        load_compressor(str(tmp_path / "ck"), budget=8)
    with pytest.raises(ConfigError, match="trained with model tiny-random-llama"):
        load_compressor(str(tmp_path / "ck"), model="smollm2-135m")
    with pytest.raises(ConfigError, match="reader: runs/reader conflicts"):  # the harness: the same rule, before loading
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
    lines = capsys.readouterr().out.splitlines()[-5:]
    assert [line.split(":")[0].strip() for line in lines] == ["extractive", "snapkv", "generate", "learned", "gist"]
    assert "kept 8 of" in lines[0] and "<3 gist KV entries" in lines[3] and "2 gist tokens" in lines[4]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: load_compressor("shrink", budget=8), "unknown method 'shrink'"),
        (lambda: load_compressor("prefix"), "^budget: this method needs a token budget"),
        (lambda: load_compressor("full", budget=8), "^budget: method 'full' keeps everything or nothing and takes no budget"),
        (lambda: load_compressor("prefix", budget=8, device="cuda:7"), "device 'cuda:7' is not available here"),
        (lambda: load_compressor("prefix", budget=8, ratio=4), "^ratio: give a budget or a ratio, not both"),
        (lambda: load_compressor("prefix", ratio=0.5), r"^ratio: is context tokens per kept token, a number >= 1 \(ratio=4 keeps a quarter\); got 0.5"),
        (lambda: load_compressor("full", ratio=2), "^ratio: method 'full' keeps everything, nothing or what it was trained for, and takes no ratio"),
        (lambda: load_compressor("prefix", budget=99999999999999999999, model=TINY), "^budget: 99999999999999999999 is more than the model's 2048 positions"),
    ],
)
def test_bad_requests_fail_with_a_clear_error(call, message):
    """API errors name the argument (`budget: ...`), never a command-line flag."""
    with pytest.raises(ConfigError, match=message) as error:
        call()
    assert "--" not in str(error.value)


def test_a_folder_that_is_no_method_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="neither a compressor checkpoint nor a gist model"):
        load_compressor(str(tmp_path))


@pytest.fixture(scope="module")
def tiny_prefix(tiny):
    model, tokenizer = tiny
    return load_compressor("prefix", budget=6, model=model, tokenizer=tokenizer, solved_from=synthetic_squad(6, seed=1))


@pytest.mark.parametrize("name, budget", [("prefix", 6), ("snapkv", 6), ("streaming", 5)])
def test_an_answer_reads_what_compress_returned_and_lists_go_together(tiny, name, budget):
    model, tokenizer = tiny
    compressor = load_compressor(name, budget=budget, model=model, tokenizer=tokenizer, solved_from=synthetic_squad(6, seed=1))
    examples = synthetic_squad(8, seed=7)
    contexts, questions = [e.context for e in examples], [e.question for e in examples]
    compressed = compressor.compress(contexts, questions)
    assert len(compressed) == 8 and all(c.n_tokens == budget for c in compressed)
    one_by_one = [compressor.answer(e.context, e.question, max_new_tokens=4) for e in examples]
    assert compressor.answer(compressed, questions, max_new_tokens=4) == one_by_one
    assert compressor.answer(contexts, questions, max_new_tokens=4) == one_by_one
    assert compressor.answer(compressed[0], questions[0], max_new_tokens=4) == one_by_one[0]


def test_the_default_prompt_is_the_harness_prompt_with_the_shipped_solved_examples(tiny, tmp_path):
    """Without a data dir the API shows the two solved examples the harness picks from the shared SQuAD train
    split (shipped in the package); with `solved_from` it picks from that split as the harness does."""
    from compressions.data.solved_examples import SOLVED_EXAMPLES

    model, tokenizer = tiny
    compressor = load_compressor("prefix", budget=6, model=model, tokenizer=tokenizer)
    assert compressor.prompt == SquadPromptConfig() and compressor.shots == list(SOLVED_EXAMPLES)
    train, examples = synthetic_squad(6, seed=1), synthetic_squad(3, seed=7)
    picked = load_compressor("prefix", budget=6, model=model, tokenizer=tokenizer, solved_from=train)
    answers = [picked.answer(e.context, e.question, max_new_tokens=4) for e in examples]
    config = SquadEvalConfig(model=TINY, method="prefix", budget=6, max_new_tokens=4, out=str(tmp_path / "eval"))
    evaluate_squad(config, examples, train)
    assert answers == [s["prediction"] for s in json.loads((tmp_path / "eval" / "sample_predictions.json").read_text())]
    with pytest.raises(ConfigError, match="prompt.shots=3: only 2 solved examples"):
        load_compressor("prefix", budget=6, model=model, tokenizer=tokenizer, prompt=SquadPromptConfig(shots=3))


def test_shipped_solved_examples_are_the_ones_the_harness_picks(shared_data):
    from compressions.data.prompts import pick_shots
    from compressions.data.solved_examples import SOLVED_EXAMPLES
    from compressions.data.squad import load_squad

    assert pick_shots(load_squad("squad", "train", str(shared_data)), 2) == list(SOLVED_EXAMPLES)


@pytest.mark.parametrize("name, budget", [("prefix", 6), ("snapkv", 6), ("kvzip", 6), ("expected_attention", 6), ("full", None)])
def test_generate_inputs_feed_model_generate_to_the_same_answer(tiny, name, budget):
    model, tokenizer = tiny
    compressor = load_compressor(name, budget=budget, model=model, tokenizer=tokenizer)
    example = synthetic_squad(1, seed=7)[0]
    compressed = compressor.compress(example.context, example.question)
    inputs = compressor.generate_inputs(compressed, example.question)
    if compressed.kv is not None:
        assert isinstance(inputs["cache"], DynamicCache) and inputs["position_ids"].shape == inputs["input_ids"].shape
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    new = out[0, inputs["input_ids"].shape[1] :]
    expected = compressor.answer(compressed, example.question, max_new_tokens=4)
    assert first_line(tokenizer.decode(new, skip_special_tokens=True)) == expected


def test_generate_inputs_for_soft_tokens(tmp_path):
    llm, tokenizer = load_model(TINY)
    torch.manual_seed(0)
    SoftPromptModel.create(PipelineConfig(model=TINY, arch="conv", budget=3, compressor={"hidden_size": 16}), llm, tokenizer).save_pretrained(tmp_path / "ck")
    compressor = load_compressor(str(tmp_path / "ck"))
    example = synthetic_squad(1, seed=8)[0]
    compressed = compressor.compress(example.context, example.question)
    inputs = compressor.generate_inputs(compressed, example.question)
    assert set(inputs) == {"inputs_embeds", "attention_mask"}
    with compressor.method.reading():
        out = compressor.model.generate(**inputs, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    expected = compressor.answer(compressed, example.question, max_new_tokens=4)
    assert first_line(compressor.tokenizer.decode(out[0], skip_special_tokens=True)) == expected


def test_a_loaded_model_is_taken_with_its_own_tokenizer(tiny):
    model, tokenizer = tiny
    example = synthetic_squad(1, seed=7)[0]
    by_name = load_compressor("prefix", budget=6, model=TINY)
    for given in (dict(model=model), dict(llm=model)):
        compressor = load_compressor("prefix", budget=6, **given)
        assert compressor.model is model and compressor.model_name == TINY
        assert compressor.tokenizer.get_vocab() == tokenizer.get_vocab()
        assert compressor.answer(example.context, example.question, max_new_tokens=4) == by_name.answer(example.context, example.question, max_new_tokens=4)
    anonymous, _ = load_model(TINY)
    anonymous.config.name_or_path = ""
    with pytest.raises(ConfigError, match="^tokenizer: no tokenizer found where the model came from"):
        load_compressor("prefix", budget=6, llm=anonymous)


def test_a_ratio_keeps_one_token_in_ratio(tiny):
    model, tokenizer = tiny
    compressor = load_compressor("prefix", ratio=4, model=model, tokenizer=tokenizer)
    contexts = [e.context for e in synthetic_squad(4, seed=3)]
    compressed = compressor.compress(contexts)
    for context, kept in zip(contexts, compressed):
        n = len(tokenizer(context, add_special_tokens=False).input_ids)
        assert kept.n_tokens == max(1, round(n / 4)) and kept.token_ids == tokenizer(context, add_special_tokens=False).input_ids[: kept.n_tokens]


@pytest.mark.parametrize(
    "context, question, message",
    [
        (5, "Who?", "^context: takes a string or what compress\\(\\) returned, or a list of them; got int"),
        ("   ", "Who?", "^context: is empty"),
        ("Some text.", None, "^question: takes a string, or a list of them; got NoneType"),
        (["a b", "c d"], ["q1", "q2", "q3"], "^question: 3 questions for 2 contexts"),
        ("Some text.", "  ", "^question: is empty: there is nothing to answer"),
    ],
)
def test_answer_checks_what_it_is_given(tiny_prefix, context, question, message):
    with pytest.raises(ConfigError, match=message):
        tiny_prefix.answer(context, question)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["extractive", "snapkv"])
def test_api_answers_are_the_cli_predictions_on_validation_questions(shared_data, tmp_path, name):
    """The library's defaults (prompt, solved examples, answer line) are the harness's: the same answers as
    `compressions eval squad` on the first validation questions, with the embedded model."""
    from compressions.data.squad import load_squad

    out = tmp_path / name
    argv = ["eval", "squad", "--method", name, "--budget", "32", "--limit", "6", "--max-new-tokens", "32", "--data-dir", str(shared_data)]
    assert main([*argv, "--out", str(out)]) == 0
    predictions = [s["prediction"] for s in json.loads((out / "sample_predictions.json").read_text())]
    examples = load_squad("squad", "validation", str(shared_data))[:6]
    answers = load_compressor(name, budget=32).answer([e.context for e in examples], [e.question for e in examples])
    assert answers == predictions and sum(map(bool, answers)) == 6



def test_saved_families_are_registry_names_with_their_folder_option(tmp_path):
    """`learned` (option checkpoint) and `gist` (option model) are looked up like any method; a folder alone
    stands for the family that loads its kind."""
    from compressions.methods import METHODS, method_options

    llm, tokenizer = load_model(TINY)
    SoftPromptModel.create(PipelineConfig(model=TINY, arch="gist_kv", budget=3), llm, tokenizer).save_pretrained(tmp_path / "ck")
    example = synthetic_squad(1, seed=8)[0]
    by_name = load_compressor("learned", checkpoint=str(tmp_path / "ck"))
    by_folder = load_compressor(str(tmp_path / "ck"))
    assert by_name.name == by_folder.name == "learned-gist_kv" and by_name.budget == 3
    assert by_name.answer(example.context, example.question, max_new_tokens=4) == by_folder.answer(example.context, example.question, max_new_tokens=4)
    assert method_options("learned") == ["checkpoint"] and method_options("gist") == ["model"]
    assert {name for name, entry in METHODS.items() if entry.folder} == {"learned", "gist"}
    with pytest.raises(ConfigError, match="^checkpoint: method 'learned' loads a saved compressor checkpoint: pass checkpoint=DIR"):
        load_compressor("learned")
    with pytest.raises(ConfigError, match="is a compressor checkpoint, not a gist model"):
        load_compressor("gist", model=str(tmp_path / "ck"))


def test_a_new_method_is_one_class_and_one_registry_line(monkeypatch, tmp_path):
    """What docs/architecture.md shows: a class and its line in METHODS, and the API and the harness run it."""
    from compressions.methods import METHODS, Entry
    from compressions.methods.base import BudgetedCompressor

    class EveryOther(BudgetedCompressor):
        name = "every-other"

        def select(self, context, question, budget, ids):
            return ids[::2][:budget]

    monkeypatch.setitem(METHODS, "every-other", Entry(EveryOther))
    compressor = load_compressor("every-other", budget=6, model=TINY, prompt=SquadPromptConfig(shots=0))
    examples = synthetic_squad(3, seed=7)
    kept = compressor.compress(examples[0].context)
    assert kept.token_ids == compressor.tokenizer(examples[0].context, add_special_tokens=False).input_ids[::2][:6]
    answers = [compressor.answer(e.context, e.question, max_new_tokens=4) for e in examples]
    assert answers == _harness_predictions(tmp_path, examples, method="every-other", budget=6)


@pytest.mark.slow
def test_the_readme_example_prints_the_right_answer(capfd):
    """The README's Python block, as a newcomer runs it, with the embedded model."""
    block = (REPO / "README.md").read_text().split("```python\n", 1)[1].split("```", 1)[0]
    exec(compile(block, "README.md", "exec"), {})
    assert capfd.readouterr().out.splitlines()[-1] == "32 Brazil"
