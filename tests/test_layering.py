"""Dependencies run one way: `zoo` never imports `training` or `export` (DESIGN.md section 2)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imported_modules(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_zoo_does_not_import_training_or_export():
    offenders = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in (ROOT / "zoo").rglob("*.py")
        if path.name != "cli.py"  # the CLI dispatches lazily to training/export
        for module in _imported_modules(path)
        if module.split(".")[0] in ("training", "export")
    ]
    assert not offenders, offenders


def test_integrators_and_dynamics_do_not_import_each_other():
    for name, other in (("integrators", "zoo.dynamics"), ("dynamics", "zoo.integrators")):
        assert other not in set(_imported_modules(ROOT / "zoo" / f"{name}.py"))
