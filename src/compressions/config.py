"""Dataclass configs: defaults in code, then a YAML file, then dotted command-line overrides
(`prompt.shots=2`). Unknown keys and wrong types fail with the key named."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compressions.errors import ConfigError

T = TypeVar("T")


def load_config(schema: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    """Build a `schema` dataclass from its defaults, a YAML (or JSON) file, and `key=value` overrides."""
    try:
        merged = OmegaConf.structured(schema)
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"config file not found: {path}")
            merged = OmegaConf.merge(merged, OmegaConf.load(path))
        if overrides:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist(list(overrides)))
        config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = f" key {err.full_key!r}" if getattr(err, "full_key", None) else ""
        raise ConfigError(f"bad config{f' in {path}' if path else ''}{key}: {str(err).splitlines()[0]}") from None
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


def config_dict(config) -> dict:
    return dataclasses.asdict(config)
