"""The folders' dependencies point one way: data/ and models/ know nothing of each other, and sphere/, the numerics
they share, knows neither."""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

FORBIDDEN = {"data": {"models"}, "models": {"data"}, "sphere": {"data", "models"}}


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """The top-level packages each module of ``folder`` imports, by the module's path."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(folder))] = names
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_do_not_import_the_layers_they_must_not_know(package):
    modules = imported_packages(REPO / package)
    assert modules, f"{package}/ has no modules"
    wrong = {path: sorted(names & FORBIDDEN[package]) for path, names in modules.items() if names & FORBIDDEN[package]}
    assert not wrong, f"{package}/ must not import {sorted(FORBIDDEN[package])}: {wrong}"


def test_the_check_sees_a_forbidden_import(tmp_path):
    (tmp_path / "module.py").write_text("import torch.nn\nfrom data.solver import fourier_matrix\nfrom . import x\n")
    assert imported_packages(tmp_path) == {"module.py": {"torch", "data"}}
