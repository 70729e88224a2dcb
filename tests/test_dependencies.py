"""runs/ and evaluation/ depend one way only: evaluation reads run folders through runs.folder, and nothing in runs/
imports evaluation (issue #17), so that the run machinery loads and works without the reports."""

import ast

import pytest

from tests.conftest import REPO


def imported_modules(path):
    """Every module a Python file imports, at the top or inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


@pytest.mark.parametrize("path", sorted((REPO / "runs").rglob("*.py")), ids=lambda path: path.name)
def test_no_module_of_runs_imports_evaluation(path):
    offending = [name for name in imported_modules(path) if name.split(".")[0] == "evaluation"]
    assert not offending, f"{path.relative_to(REPO)} imports {offending}: runs/ must not depend on evaluation/"


def test_the_import_parser_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("import os\n\ndef f():\n    from evaluation.sweep import report\n    import evaluation.plots\n")
    assert list(imported_modules(source)) == ["os", "evaluation.sweep", "evaluation.plots"]
