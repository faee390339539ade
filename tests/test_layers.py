"""The package's layers, declared once: a module may import from a lower layer or from its own package,
never from a higher layer or from another package of its own layer, and no modules import each other in a
loop. Checked on every import statement, those inside functions included (what runs later climbs as
surely as what runs at import), and at run time: validating a config loads no method package."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import compressions

PACKAGE = Path(compressions.__file__).parent
# lowest first; the top layer may import anything below it
LAYERS = (
    ("errors",),
    ("progress",),
    ("config",),
    ("store",),  # run folders, locks, reports, saved-folder file names
    ("data",),
    ("models",),
    ("training",),
    ("methods",),  # the method protocol, the registry, text and KV-cache methods
    ("evaluation",),  # the harness, metrics, reading a compressed context
    ("reader",),
    ("compressors", "gist"),  # learned methods; gist tokens
    ("api",),
    ("experiments",),  # one run, grids, clusters, reports across runs
    ("benchmarks", "cli", "__main__", "__init__"),
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    """Dotted name (without `compressions.`) -> file, for every module of the package."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)
        found[name] = path
    return found


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of `modules` a file imports, anywhere in it: `from pkg import module` names the module
    (its package's __init__ is what Python runs first in any case, not what the file uses)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.removeprefix("compressions.") for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("compressions."):
            base = node.module.removeprefix("compressions.")
            names.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return names & modules


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}


def _package(module: str) -> str:
    return module.split(".")[0]


def test_every_package_has_a_layer():
    assert {_package(m) for m in _modules()} <= set(LAYER), "add the new package to LAYERS"


def test_no_import_climbs_or_crosses_a_layer():
    bad = []
    for module, imported in _graph().items():
        for target in imported:
            here, there = _package(module), _package(target)
            if here != there and LAYER[there] >= LAYER[here] and LAYER[here] != len(LAYERS) - 1:
                bad.append(f"{module} -> {target}")
    assert sorted(bad) == []


def test_no_modules_import_each_other_in_a_loop():
    graph = _graph()
    loops = []
    for start in graph:  # a loop through `start`: a path from one of its imports back to it
        stack, seen = [(start, (start,))], set()
        while stack:
            module, path = stack.pop()
            for target in graph[module]:
                if target == start:
                    loops.append(" -> ".join((*path, start)))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))
    assert loops == []


CHECK = """
import json, sys
from compressions.config import load_config
from compressions.evaluation.squad_eval import SquadEvalConfig
load_config(SquadEvalConfig, overrides={overrides!r})
print(json.dumps(sorted(m for m in sys.modules if m.startswith("compressions."))))
"""


@pytest.mark.parametrize("kind", ["text", "learned"])
def test_validating_a_config_loads_no_method_package(tmp_path, kind):
    """What a run checks before it starts reads saved folders' JSON, not the code of the family that wrote them."""
    overrides = ["method=prefix", "budget=8"]
    if kind == "learned":
        (tmp_path / "compressor_config.json").write_text("{}")
        (tmp_path / "pipeline_config.json").write_text('{"model": "tiny-random-llama", "budget": 4, "reader": null}')
        overrides = ["method=learned", f"checkpoint={tmp_path}", "model=null"]
    done = subprocess.run([sys.executable, "-c", CHECK.format(overrides=overrides)], capture_output=True, text=True, check=True)
    loaded = {_package(m.removeprefix("compressions.")) for m in __import__("json").loads(done.stdout)}
    assert loaded.isdisjoint({"compressors", "gist", "reader", "api", "experiments"}), loaded
