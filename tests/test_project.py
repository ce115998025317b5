"""Notebook paths: a kernel started in notebooks/ (JupyterLab) reads the same runs as one started at the
root (the terminal runner), and a notebook run never rewrites the committed figures."""

import os
from pathlib import Path

import pytest

from anira_lib.notebooks import NOTEBOOK_DIR, declared_parameters, load_notebook
from anira_lib.project import figure_folder, project_root, work_from_project_root


@pytest.fixture
def checkout(tmp_path):
    root = tmp_path / "anira"
    (root / "anira_lib").mkdir(parents=True)
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'anira'\n")
    return root


@pytest.fixture
def restore_cwd():
    before = Path.cwd()
    yield
    os.chdir(before)


def test_project_root_is_the_nearest_folder_with_pyproject_and_the_package(checkout, tmp_path):
    assert project_root(checkout / "notebooks") == checkout.resolve()
    assert project_root(checkout) == checkout.resolve()
    assert project_root(tmp_path) is None
    assert project_root(Path(__file__)) == Path(__file__).resolve().parents[1]


def test_a_kernel_in_notebooks_moves_to_the_root_so_relative_runs_resolve(checkout, restore_cwd, capsys):
    (checkout / "runs" / "01_mano").mkdir(parents=True)
    os.chdir(checkout / "notebooks")
    assert not Path("runs/01_mano").exists()
    assert work_from_project_root() == checkout.resolve()
    assert Path.cwd() == checkout.resolve() and Path("runs/01_mano").is_dir()
    assert "working directory" in capsys.readouterr().out


@pytest.mark.parametrize("where", [".", "anira_lib", None])
def test_any_other_working_directory_is_left_alone(checkout, tmp_path, restore_cwd, where):
    start = tmp_path if where is None else checkout / where
    os.chdir(start)
    assert work_from_project_root() == start.resolve() and Path.cwd() == start.resolve()


def test_figures_go_beside_the_runs_unless_a_folder_is_named():
    assert figure_folder("", "runs/01_mano") == Path("runs/01_mano/figures")
    assert figure_folder("figures", "runs/01_mano") == Path("figures")


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py")), ids=lambda p: p.stem)
def test_no_notebook_writes_into_the_committed_figures_by_default(path):
    params = declared_parameters(load_notebook(path))
    assert params.get("figure_dir") == "", f"{path.name}: figure_dir should default to '' (<out_dir>/figures)"
    assert "work_from_project_root()" in path.read_text(), f"{path.name} should call work_from_project_root()"
