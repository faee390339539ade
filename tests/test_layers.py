"""The package's layers: the harness and the baselines never import the learned compressors (or the API
module that joins every family), so a learned method goes through the same path as any other."""

import ast
from pathlib import Path

import pytest

import compressions

PACKAGE = Path(compressions.__file__).parent
FORBIDDEN = {"evaluation": ("compressions.compressors", "compressions.api"), "baselines": ("compressions.compressors", "compressions.api", "compressions.evaluation")}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upper_ones(package):
    modules = sorted((PACKAGE / package).glob("*.py"))
    assert modules
    bad = {m.name: sorted(i for i in _imports(m) if i.startswith(FORBIDDEN[package])) for m in modules}
    assert {name: found for name, found in bad.items() if found} == {}
