"""Every file a docstring, comment or doc page names resolves inside the repository.

A path-like mention (`docs/x.md`, `anira_lib/y.py`, `tests/z.py`, `configs/…`, `benchmarks/…`,
`notebooks/…`, `data/…`) in the package, tests, benchmarks, notebooks, README and docs must name a file
or folder of this checkout: a fresh clone must not lead a reader to a dead link.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOP = ("docs", "anira_lib", "tests", "configs", "benchmarks", "notebooks", "data", "figures")
MENTION = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*\w)" % "|".join(TOP))
SOURCES = sorted([*ROOT.glob("anira_lib/**/*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py"),
                  *ROOT.glob("notebooks/[0-9][0-9]_*.py"), *ROOT.glob("docs/*.md"), ROOT / "README.md"])
# Paths that are made at run time or are patterns, not files of the checkout.
GENERATED = re.compile(r"^(data/(clrs|lano_proxies)(/|$)|runs/|figures/.*\{|(docs/)?figures/findings_|data/calibration/<)")


def mentions(text: str) -> list[str]:
    return [m.rstrip(".") for m in MENTION.findall(text)]


def test_the_pattern_finds_paths_and_ignores_other_words():
    text = "see docs/tasks.md, or `anira_lib/modeling/cache.py`; not mydocs/x.md nor a/docs/y.md; configs/studies/."
    assert mentions(text) == ["docs/tasks.md", "anira_lib/modeling/cache.py", "configs/studies"]


def resolves(mention: str, source: Path) -> bool:
    """A mention names a file or folder from the root, a module without its `.py`, or (in a Markdown
    page) a path relative to the page's own folder."""
    bases = [ROOT] + ([source.parent] if source.suffix == ".md" else [])
    return any((base / mention).exists() or (base / f"{mention}.py").exists() for base in bases)


@pytest.mark.parametrize("path", [p for p in SOURCES if p.name != "test_references.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_file_exists(path):
    missing = [m for m in mentions(path.read_text(encoding="utf-8"))
               if not GENERATED.match(m) and "*" not in m and not resolves(m, path)]
    assert not missing, f"{path.relative_to(ROOT)} names files that are not in the repository: {missing}"


def test_a_dead_link_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see docs/no_such_page.md and docs/tasks.md")
    assert [m for m in mentions(page.read_text()) if not resolves(m, page)] == ["docs/no_such_page.md"]


def test_no_pointer_to_notes_outside_the_repository():
    offenders = [str(p.relative_to(ROOT)) for p in SOURCES
                 if p.name != "test_references.py" and "specs/" in p.read_text(encoding="utf-8")]
    assert not offenders, f"these files point at specs/, which a clone does not have: {offenders}"
