"""CLI flags derived from the config dataclasses (cli/flags.py): type, help and choices from the config
and its registries; given flags become overrides that trailing key=value words can still change."""

import argparse

import pytest

from compressions.cli.flags import Flag, add_config_flags, config_overrides
from compressions.cli.main import build_parser
from compressions.compressors import ARCHITECTURES
from compressions.compressors.train import CompressorTrainConfig
from compressions.config import load_config


def _parser():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, CompressorTrainConfig, [Flag("pipeline.arch", choices=ARCHITECTURES), "pipeline.budget", "eval_limit"])
    parser.add_argument("overrides", nargs="*")
    return parser


def test_flags_take_type_help_and_choices_from_the_config():
    actions = {a.option_strings[0]: a for a in _parser()._actions if a.option_strings}
    assert actions["--budget"].type is int and actions["--budget"].help == "M, soft tokens per context"
    assert actions["--arch"].choices == list(ARCHITECTURES)
    assert actions["--eval-limit"].type is int
    with pytest.raises(SystemExit):
        _parser().parse_args(["--budget", "many"])


def test_given_flags_become_overrides_and_trailing_words_win():
    args = _parser().parse_args(["--arch", "gist_kv", "--budget", "16", "pipeline.budget=8"])
    assert config_overrides(args) == ["pipeline.arch=gist_kv", "pipeline.budget=16", "pipeline.budget=8"]
    config = load_config(CompressorTrainConfig, overrides=config_overrides(args))
    assert (config.pipeline.arch, config.pipeline.budget, config.eval_limit) == ("gist_kv", 8, 100)


def test_every_command_builds_and_an_unknown_field_is_refused():
    assert build_parser().parse_args(["gist", "train", "--k", "5"]).config_flags["config_flag__num_gist"] == "num_gist"
    with pytest.raises(KeyError, match="no field 'pipeline.nope'"):
        add_config_flags(argparse.ArgumentParser(), CompressorTrainConfig, ["pipeline.nope"])
