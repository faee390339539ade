"""Dataclass configs: defaults in code, then a YAML file, then dotted command-line overrides
(`prompt.shots=2`). Unknown keys and wrong types fail with the key named."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compressions.errors import ConfigError

T = TypeVar("T")


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a `schema` dataclass from its defaults, a YAML (or JSON) file, and `key=value` overrides."""
    try:
        merged = OmegaConf.structured(schema)
        if path is not None:
            merged = OmegaConf.merge(merged, _read_file(path))
        for word in overrides or ():
            _apply(merged, word)
        config = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, TypeError) as err:  # TypeError: a list indexed by a name
        key = f" key {err.full_key!r}" if getattr(err, "full_key", None) else ""
        raise ConfigError(f"bad config{f' in {path}' if path else ''}{key}: {str(err).splitlines()[0]}") from None
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def _apply(config: DictConfig, word: str) -> None:
    """One `key=value` override, its value parsed as in YAML. The key's path may index a list
    (`groups.0.base.eval.rouge_limit=100`), which a merged dotlist cannot do, and `*` stands for every
    index or key at its place (`groups.*.base.train.device=cuda`: each group of a grid)."""
    key, equals, _ = word.partition("=")
    if not equals or not key:
        raise ConfigError(f"override {word!r} is not key=value")
    text = word[len(key) + 1 :]
    value = OmegaConf.from_dotlist([f"value={text}"])["value"]
    if isinstance(value, bool) and text.strip().lower() not in ("true", "false"):
        value = text  # YAML 1.1 reads no/yes/on/off as booleans: `train.mixed_precision=no` means the text
    for each in _expand_stars(config, key):
        OmegaConf.update(config, each, value, merge=True)


def _expand_stars(config: DictConfig, key: str) -> list[str]:
    """`key` with each `*` replaced by every index or key of the node above it."""
    head, star, tail = key.partition("*")
    if not star:
        return [key]
    node = OmegaConf.select(config, head.rstrip(".")) if head.rstrip(".") else config
    if node is None or not OmegaConf.is_config(node) or not len(node):
        raise ConfigError(f"override key {key!r}: nothing at {head.rstrip('.') or 'the top'} for * to stand for")
    names = range(len(node)) if OmegaConf.is_list(node) else list(node.keys())
    return [each for name in names for each in _expand_stars(config, f"{head}{name}{tail}")]


def _read_file(path: str | Path) -> DictConfig:
    """The file's mapping; broken YAML, bytes that are not UTF-8 or a top-level list are one error line."""
    if not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not readable YAML: {' '.join(str(err).split())}") from None
    if not isinstance(loaded, DictConfig):  # a list (or a bare value) has no keys to merge
        raise ConfigError(f"config file {path} must hold a mapping of keys at its top level, not a {type(loaded).__name__}")
    return loaded


def check_choice(name: str, value: Any, allowed: Collection) -> None:
    """`value` is one of `allowed`, or a ConfigError naming the field and the choices."""
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}; got {value!r}")


def config_dict(config) -> dict:
    return dataclasses.asdict(config)
