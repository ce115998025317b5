"""The `anira` command: every subcommand reaches its module's command line under its own name."""

import dataclasses
import importlib
import sys

import pytest

from anira_lib import cli
from anira_lib.training.run_config import TrainConfig


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in cli.COMMANDS)


def test_the_launcher_answers_without_importing_torch_or_the_package():
    """Issue 30: `anira --help` took 7-21 s, because the launcher lived in anira_lib, whose import loads
    torch and transformers. The console script is now the top-level anira_cli; a fresh interpreter shows
    the help and refuses a mistyped command with neither torch nor anira_lib imported."""
    import subprocess

    code = ("import sys, anira_cli\n"
            "assert anira_cli.main(['--help']) == 0\n"
            "try:\n    anira_cli.main(['trian'])\nexcept SystemExit as e:\n    print('refused:', e)\n"
            "print('heavy:', sorted(m for m in ('torch', 'transformers', 'anira_lib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: anira COMMAND" in out and "refused: anira: unknown command 'trian'" in out
    assert out.strip().endswith("heavy: []")
    import tomllib
    from pathlib import Path

    scripts = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["anira"] == "anira_cli:main" and cli.main is importlib.import_module("anira_cli").main


def test_an_unknown_command_is_one_line_naming_the_choices():
    with pytest.raises(SystemExit) as err:
        cli.main(["trian"])
    message = str(err.value)
    assert "\n" not in message and "'trian'" in message and "train" in message


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_every_command_answers_help_under_its_anira_name(name, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["anira"])
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: anira {name} ")
    assert callable(importlib.import_module(cli.COMMANDS[name][0]).main)


def test_train_help_lists_every_config_field_with_its_default(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["anira"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for f in dataclasses.fields(TrainConfig):
        assert f"  {f.name}=" in out, f.name
    assert "  max_depth=4" in out and "  task='mano'" in out


def test_outside_anira_the_usage_names_the_module(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/somewhere/train.py"])
    assert cli.program_name("anira_lib.training.train") == "python -m anira_lib.training.train"
    monkeypatch.setattr(sys, "argv", ["anira train"])
    assert cli.program_name("anira_lib.training.train") == "anira train"


def test_notebooks_list_gives_each_notebook_with_what_it_shows(capsys):
    from anira_lib.notebooks import NOTEBOOK_DIR, main

    main(["list"])
    lines = capsys.readouterr().out.splitlines()
    names = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    listed = [line.split()[0] for line in lines[: len(names)]]
    assert listed == names
    assert lines[0].split(None, 1)[1] == "MANO: does compute track the number of operators?"
    assert not any("{" in line for line in lines)  # no raw parameter dicts


def test_notebooks_show_prints_the_parameters_cell_with_its_comments(capsys):
    from anira_lib.notebooks import main

    main(["show", "3"])
    out = capsys.readouterr().out
    assert out.startswith("03_depo: DEPO") and "max_nodes = 5" in out and "# N: cycle sizes" in out
    with pytest.raises(SystemExit, match="ambiguous"):
        main(["show", "mano"])


def test_one_line_errors_turns_an_error_into_one_line_and_debug_keeps_the_traceback():
    with pytest.raises(SystemExit) as err:
        with cli.one_line_errors("anira x"):
            raise ValueError("steps must be >= 1, got 0")
    assert str(err.value) == "anira x: error: steps must be >= 1, got 0 (run with --debug for the traceback)"
    with pytest.raises(ValueError):
        with cli.one_line_errors("anira x", debug=True):
            raise ValueError("kept")
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is the caller's to word
        with cli.one_line_errors("anira x"):
            raise KeyboardInterrupt
