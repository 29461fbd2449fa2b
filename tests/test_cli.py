"""The `stable-zoo` command line: list, info, and a clear error for unknown names."""

import json

import pytest

import zoo
from zoo.cli import main


def test_cli_list_and_info(capsys):
    assert main(["list", "--architectures"]) == 0
    assert "hr17_verlet" in capsys.readouterr().out.split()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    pretrained = zoo.list_models(pretrained=True)
    assert all(name in out for name in pretrained) and f"{len(pretrained)} pretrained entries" in out
    assert main(["info", pretrained[0]]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == pretrained[0]
    assert main(["info", "hr17_verlet"]) == 0
    out = capsys.readouterr().out
    assert "Verlet x HamiltonianTwoStream" in out and "h = 1.25" in out


def test_cli_unknown_model_is_one_clear_error(capsys):
    assert main(["info", "hr17_verlett"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'hr17_verlett'" in err and "hr17_verlet" in err


def test_cli_bad_arguments_exit_with_usage_errors(capsys):
    for argv in (["evaluate", "x", "--limit", "0"], ["fine-tune", "x", "--task", "nope"],
                 ["fine-tune", "x", "--epochs", "-1"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    assert main(["evaluate", "no_such_model"]) == 2
    assert "Unknown pretrained model 'no_such_model'" in capsys.readouterr().err


def test_cli_export_writes_an_artefact_and_refuses_bad_requests(tmp_path, capsys):
    out = str(tmp_path)
    assert main(["export", "hr17_antisymmetric", "--format", "onnx", "--out", out]) == 0
    assert (tmp_path / "hr17_antisymmetric.onnx").exists()
    capsys.readouterr()
    assert main(["export", "hr17_antisymmetric", "--format", "onnx", "--out", out]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "hr17_antisymmetric", "--format", "saved_model", "--quantize", "int8", "--out", out]) == 2
    assert "not saved_model" in capsys.readouterr().err
    assert main(["export", "hr17_antisymmetric", "--format", "onnx", "--quantize", "int8", "--out", out]) == 2
    assert "real training data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "hr17_antisymmetric", "--format", "pickle", "--out", out])
    assert exit_info.value.code == 2


def test_make_demo_installs_what_the_demo_imports():
    """`make demo` on a fresh clone installs the extras the demo needs (it exports to ONNX).

    The demo once failed at its export step on a fresh clone: the target installed the package
    without the `export` extra, while the tests, which install `.[test]`, never noticed.
    """
    import pathlib
    import re
    import tomllib

    root = pathlib.Path(__file__).resolve().parents[1]
    recipe = re.search(r"^\$\(VENV\)/\.demo-installed:.*?\n((?:\t.*\n)+)", (root / "Makefile").read_text(), re.M)
    assert recipe, "Makefile has no .demo-installed target"
    extras = re.search(r'pip install -q -e "?\.\[([^\]]+)\]', recipe.group(1))
    assert extras, "the demo target installs no extras"
    optional = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installed = {req.split(">")[0].split("=")[0].split("<")[0] for extra in extras.group(1).split(",")
                 for req in optional[extra.strip()]}
    assert {"tf2onnx", "onnxruntime"} <= installed
    demo_source = (root / "zoo" / "cli.py").read_text()
    assert "export_onnx" in demo_source and "quantize_onnx_int8" in demo_source  # what needs them
