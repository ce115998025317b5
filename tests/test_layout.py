"""The package's folders build on each other in one order (docs/layout.md): a folder imports from the
folders before it and the modules at the top of the package, never from a folder after it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "anira_lib"
ORDER = ["modeling", "tasks", "training", "evaluation", "display", "analysis", "studies"]


def imported_folders(path: Path, package: Path = PACKAGE) -> set[str]:
    """The anira_lib folders (or 'top' for modules at the package's top) that `path` imports from."""
    here = list(path.relative_to(package.parent).with_suffix("").parts)[:-1]  # ['anira_lib', folder]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = here[: len(here) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif (node.module or "").split(".")[0] == "anira_lib":
                target = node.module.split(".")
            else:
                continue
            names = [a.name for a in node.names] if len(target) == 1 else [None]
        elif isinstance(node, ast.Import):
            targets = [a.name.split(".") for a in node.names if a.name.split(".")[0] == "anira_lib"]
            found |= {t[1] if len(t) > 2 or (len(t) == 2 and t[1] in ORDER) else "top" for t in targets}
            continue
        else:
            continue
        for name in names:
            full = target + ([name] if name else [])
            folder = full[1] if len(full) > 1 else "top"
            found.add(folder if folder in ORDER else "top")
    return found


@pytest.mark.parametrize("folder", ORDER)
def test_a_folder_imports_only_from_the_folders_before_it(folder):
    allowed = {"top", folder, *ORDER[: ORDER.index(folder)]}
    wrong = {str(p.relative_to(PACKAGE.parent)): sorted(imported_folders(p) - allowed)
             for p in sorted((PACKAGE / folder).rglob("*.py"))}
    wrong = {k: v for k, v in wrong.items() if v}
    assert not wrong, f"imports from folders after {folder}/ (docs/layout.md's order {ORDER}): {wrong}"


def test_every_folder_is_in_the_order_and_the_top_stays_small():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ORDER)
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "cli", "faults", "files", "intervals", "notebooks", "progress", "project", "results",
                   "variants"]


def test_the_import_reader_sees_a_backward_import(tmp_path):
    """The reader itself: imports from studies/, training/, evaluation/ and the top, written relative or
    absolute, are all seen (so the order test can fail)."""
    fake = tmp_path / "anira_lib" / "modeling"
    fake.mkdir(parents=True)
    (fake / "x.py").write_text("from ..studies.experiments import compare_deciders\nfrom ..files import atomic_write_text\n"
                               "import anira_lib.training.train\nfrom anira_lib import evaluation\n")
    assert imported_folders(fake / "x.py", tmp_path / "anira_lib") == {"studies", "top", "training", "evaluation"}
