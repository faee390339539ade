import json
from pathlib import Path

import pytest

from compressions.compressors.selector import SelectorConfig
from compressions.compressors.train import CompressorTrainConfig
from compressions.config import load_config
from compressions.errors import ConfigError
from compressions.evaluation.squad_eval import SquadEvalConfig
from compressions.reader.config import ReaderConfig
from compressions.store.run_folder import RunFolder
from compressions.training.config import TrainConfig


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: none\nprompt:\n  format: completion\n  shots: 1\n")
    config = load_config(SquadEvalConfig, path, ["prompt.shots=3", "limit=5"])
    assert (config.method, config.prompt.format, config.prompt.shots, config.limit) == ("none", "completion", 3, 5)


@pytest.mark.parametrize("override, field", [("nope=1", "nope"), ("limit=abc", "limit"), ("prompt.format=xml", "prompt.format")])
def test_bad_configs_name_the_field(override, field):
    with pytest.raises(ConfigError, match=field.split(".")[-1]):
        load_config(SquadEvalConfig, overrides=[override])


def test_yaml_words_for_booleans_stay_text_in_a_text_field():
    config = load_config(TrainConfig, overrides=["mixed_precision=no"])
    assert config.mixed_precision == "no"  # YAML 1.1 reads `no` as False, which a text field kept as "False"
    assert load_config(ReaderConfig, overrides=["train.mixed_precision=no", "lora.r=4"]).train.mixed_precision == "no"
    assert load_config(CompressorTrainConfig, overrides=["untrained=no", "pipeline.use_lora=yes"]).pipeline.use_lora is True
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config(TrainConfig, overrides=["mixed_precision=bf61"])


def test_config_round_trips_through_the_run_folder(tmp_path):
    config = load_config(SquadEvalConfig, overrides=["prompt.shots=2", "method=random", "method_options.seed=7", "budget=32"])
    with RunFolder(tmp_path / "run") as run:
        run.save_config(config)
    assert load_config(SquadEvalConfig, tmp_path / "run" / "config.json") == config
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert env["packages"]["torch"] and env["device"] and "git_commit" in env


def test_empty_override_means_no_anchor(tiny):
    from compressions.data.prompts import squad_prompt

    config = load_config(SquadEvalConfig, overrides=["prompt.format=chat", "prompt.anchor="])  # the shell's anchor=''
    assert squad_prompt(tiny[1], "Who?", config.prompt).suffix.endswith("assistant\n")


def test_only_rank_zero_writes_run_files(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with RunFolder(tmp_path / "run") as run:
        run.write_json("metrics.json", {"f1": 1.0})
        run.write_metrics({"f1": 1.0})
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["run.rank1.log"]
    monkeypatch.setenv("RANK", "0")
    with RunFolder(tmp_path / "run") as run:
        run.write_json("metrics.json", {"f1": 1.0})
    assert (tmp_path / "run" / "metrics.json").is_file() and (tmp_path / "run" / "run.log").is_file()


@pytest.mark.parametrize("name", ["best.yaml", "gist_kv-512.yaml", "gist_kv-reader.yaml", "selector.yaml"])
def test_shipped_compressor_configs_load(name):
    schema = SelectorConfig if name == "selector.yaml" else CompressorTrainConfig
    root = Path(__file__).parents[1]
    config = load_config(schema, root / "configs" / "compressors" / name)
    if name == "best.yaml":  # runs on a fresh clone: no earlier run to read through, on the seeds' documents
        assert config.pipeline.reader is None and config.documents == 512
        assert (root / config.pipeline.compressor["scorer"] / "selector.safetensors").is_file()  # the committed probe
        assert set(config.presets) == {"quick"}
