"""Command-line flags derived from the config dataclasses: a `--flag` per chosen field, its type from the
field's annotation, its help from the field's `metadata["help"]` and its choices from a registry, read
back as the `key=value` overrides that `config.load_config` applies after `--config FILE`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCALARS = (int, float, str)


@dataclass(frozen=True)
class Flag:
    key: str  # dotted config key, e.g. "pipeline.budget"
    name: str | None = None  # the flag without its dashes (default: the key's last part); "_" becomes "-"
    choices: Sequence[Any] | None = None  # a registry's names
    help: str | None = None  # default: the field's metadata["help"]


def _field(config_class: type, key: str) -> tuple[dataclasses.Field, type]:
    """The dataclass field at a dotted key and its scalar type (Optional unwrapped)."""
    cls, parts = config_class, key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            raise KeyError(f"{config_class.__name__} has no field {key!r}")
        kind = typing.get_type_hints(cls)[part]
        if typing.get_origin(kind) in (typing.Union, types.UnionType):  # `int | None` -> int
            (kind,) = [a for a in typing.get_args(kind) if a is not type(None)]
        if i < len(parts) - 1:
            cls = kind
    return fields[part], kind


def add_config_flags(parser: argparse.ArgumentParser, config_class: type, flags: Sequence[Flag | str]) -> None:
    """`--flag` options for the given fields of `config_class` (all default None: unset keeps the config's
    value); `config_overrides(args)` turns the ones given into overrides."""
    keys = {}
    for flag in flags:
        flag = Flag(flag) if isinstance(flag, str) else flag
        field, kind = _field(config_class, flag.key)
        name = (flag.name or flag.key.rsplit(".", 1)[-1]).replace("_", "-")
        dest = f"config_flag__{flag.key}"
        parser.add_argument(
            f"--{name}",
            dest=dest,
            type=kind if kind in SCALARS else str,
            choices=list(flag.choices) if flag.choices is not None else None,
            metavar=None if flag.choices is not None else name.upper().replace("-", "_"),
            help=flag.help or field.metadata.get("help"),
        )
        keys[dest] = flag.key
    parser.set_defaults(config_flags={**(parser.get_default("config_flags") or {}), **keys})


def config_overrides(args: argparse.Namespace) -> list[str]:
    """`key=value` for every config flag given, then the trailing `key=value` words (they win)."""
    given = [f"{key}={getattr(args, dest)}" for dest, key in getattr(args, "config_flags", {}).items() if getattr(args, dest) is not None]
    return given + list(getattr(args, "overrides", []))
