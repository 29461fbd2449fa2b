"""The `stable-zoo` command line: list, info, and a clear error for unknown names."""

from zoo.cli import main


def test_cli_list_and_info(capsys):
    assert main(["list"]) == 0
    assert "hr17_verlet" in capsys.readouterr().out.split()
    assert main(["info", "hr17_verlet"]) == 0
    out = capsys.readouterr().out
    assert "Verlet x HamiltonianTwoStream" in out and "h = 1.25" in out


def test_cli_unknown_model_is_one_clear_error(capsys):
    assert main(["info", "hr17_verlett"]) == 2
    err = capsys.readouterr().err
    assert "Unknown model 'hr17_verlett'" in err and "hr17_verlet" in err
