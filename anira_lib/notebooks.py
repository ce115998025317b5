"""Run the numbered notebooks headlessly: jupytext source -> ipynb -> papermill, with strict parameters.

    python -m anira_lib.notebooks run 01_mano                       # tiny CPU defaults
    python -m anira_lib.notebooks run 01_mano -f configs/notebooks/01_mano_paper.yaml
    python -m anira_lib.notebooks run 01_mano -p steps=500
    python -m anira_lib.notebooks list

Notebooks live in `notebooks/` as jupytext py:percent files (committed without outputs). Executed
copies land in `runs/notebooks/`. Papermill only warns about a parameter the notebook does not
declare; here it is an error naming the declared ones.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .cli import one_line_errors, program_name


NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
RUN_DIR = Path("runs") / "notebooks"


def find_notebook(name: str | Path) -> Path:
    """'01_mano', '01_mano.py', its number ('01', '1') or a path -> the jupytext source file. A name
    that matches no notebook, or several ('mano'), is an error listing the choices."""
    candidates = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    names = [c.stem for c in candidates]
    text = str(name).strip()
    if not text:
        raise FileNotFoundError(f"no notebook name given; available: {names}")
    path = Path(text)
    if path.suffix == ".py" and path.is_file():
        return path
    stem = path.stem if path.suffix == ".py" else text
    exact = [c for c in candidates if c.stem == stem]
    if exact:
        return exact[0]
    number = [c for c in candidates if stem.isdigit() and int(c.stem[:2]) == int(stem)]
    matches = number or [c for c in candidates if c.stem.startswith(stem) or c.stem[3:].startswith(stem)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise FileNotFoundError(f"notebook {text!r} is ambiguous: {[c.stem for c in matches]}; give its full name.")
    raise FileNotFoundError(f"no notebook {text!r}; available: {names}")


def load_notebook(path: Path):
    import jupytext

    nb = jupytext.read(path)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    return nb


def notebook_title(nb) -> str:
    """The first line of the notebook's first Markdown cell, without its '#' and number ('01 · ')."""
    first = next((c.source for c in nb.cells if c.cell_type == "markdown" and c.source.strip()), "")
    title = first.strip().splitlines()[0].lstrip("#").strip() if first.strip() else ""
    return title.split(" · ", 1)[-1]


def parameters_cell(nb):
    """The one cell tagged `parameters`."""
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"a notebook needs exactly one cell tagged 'parameters', found {len(cells)}.")
    return cells[0]


def declared_parameters(nb) -> dict:
    """Names and default values assigned in the cell tagged `parameters` (literals only)."""
    params = {}
    for node in ast.parse(parameters_cell(nb).source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                params[t.id] = ast.literal_eval(node.value)
    return params


def check_parameters(given: dict, declared: dict, notebook: str) -> None:
    for key, value in given.items():
        if key not in declared:
            close = difflib.get_close_matches(key, declared, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"declared: {sorted(declared)}"
            raise ValueError(f"notebook {notebook} has no parameter {key!r}; {hint}")
        default = declared[key]
        if default is not None and value is not None and not isinstance(value, type(default)) \
                and not (isinstance(default, float) and isinstance(value, int)):
            raise TypeError(f"parameter {key!r} of {notebook} must be {type(default).__name__} "
                            f"(default {default!r}), got {value!r}.")


class _TerminalStream:
    """Where papermill writes the kernel's stdout as it arrives: this terminal, above the cell bar
    (tqdm.write lifts the bar, prints, and redraws it)."""

    def __init__(self, file=None):
        self.file = file

    def write(self, text: str):
        from tqdm import tqdm

        tqdm.write(text, file=self.file or sys.stdout, end="")

    def flush(self):
        (self.file or sys.stdout).flush()


@contextmanager
def _kernel_progress_mode(mode: str = "lines"):
    """Kernels started inside inherit ANIRA_PROGRESS=`mode` (unless the caller set one)."""
    from .progress import MODE_ENV

    before = os.environ.get(MODE_ENV)
    if before is None:
        os.environ[MODE_ENV] = mode
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MODE_ENV, None)


def run_notebook(name: str | Path, parameters: dict | None = None, output_dir: str | Path = RUN_DIR,
                 cwd: str | Path | None = None, progress: bool = False, timeout: int | None = None,
                 stream=None) -> Path:
    """Execute a notebook with `parameters`; returns the executed .ipynb path (written atomically).

    Training and evaluation inside print plain progress lines (ANIRA_PROGRESS=lines), kept in the
    executed copy. progress=True also shows papermill's cell bar and streams the kernel's stdout
    (those lines, the printed tables) to this terminal as it comes, or to `stream` if given.
    timeout: seconds a cell may run; past it the kernel is interrupted, so the failed copy's traceback
    shows where the cell was."""
    import nbformat
    import papermill as pm

    from .files import tmp_beside

    src = find_notebook(name)
    nb = load_notebook(src)
    parameters = dict(parameters or {})
    check_parameters(parameters, declared_parameters(nb), src.stem)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    source_ipynb = output_dir / f"{src.stem}.source.ipynb"
    nbformat.write(nb, source_ipynb)
    out = output_dir / f"{src.stem}.ipynb"
    failed = output_dir / f"{src.stem}.failed.ipynb"
    tmp = tmp_beside(out, suffix=".tmp.ipynb")
    try:
        echo = (stream or _TerminalStream()) if progress or stream is not None else None
        with _kernel_progress_mode("lines"):
            pm.execute_notebook(str(source_ipynb), str(tmp), parameters=parameters, kernel_name="python3",
                                cwd=str(cwd or Path.cwd()), progress_bar=progress, execution_timeout=timeout,
                                interrupt_on_timeout=timeout is not None, stdout_file=echo)
        tmp.replace(out)
        failed.unlink(missing_ok=True)
    except Exception as err:  # keep the executed copy: its failing cell holds the traceback
        if tmp.is_file() and tmp.stat().st_size:
            tmp.replace(failed)
            raise RuntimeError(f"notebook {src.stem} failed; the executed copy with the traceback is {failed}: "
                               f"{str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__}") from err
        raise
    finally:
        tmp.unlink(missing_ok=True)
        source_ipynb.unlink(missing_ok=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog=program_name("anira_lib.notebooks"),
                                description="Run anira notebooks headlessly with papermill.")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="execute one notebook")
    r.add_argument("notebook", help="e.g. 01_mano")
    r.add_argument("-f", "--parameters-file", help="YAML file of parameters (e.g. paper scale)")
    r.add_argument("-p", "--param", action="append", default=[], help="name=value (value parsed as YAML)")
    r.add_argument("-o", "--output-dir", default=str(RUN_DIR))
    r.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub.add_parser("list", help="list the notebooks and what each shows")
    s = sub.add_parser("show", help="one notebook's parameters cell: names, defaults and what each means")
    s.add_argument("notebook", help="e.g. 01_mano or 1")
    args = p.parse_args(argv)
    if args.cmd == "list":
        paths = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
        width = max(len(path.stem) for path in paths)
        for path in paths:
            print(f"{path.stem:<{width}}  {notebook_title(load_notebook(path))}")
        print("\n`notebooks show NAME` lists a notebook's parameters; `notebooks run NAME -p name=value` runs it.")
        return
    if args.cmd == "show":
        with one_line_errors("anira notebooks show", hint=""):
            path = find_notebook(args.notebook)
        print(f"{path.stem}: {notebook_title(load_notebook(path))}\n")
        print(parameters_cell(load_notebook(path)).source)
        return
    with one_line_errors("anira notebooks", args.debug, hint=""):  # the executed copy named in it holds the cell's traceback
        from .training.run_config import parse_overrides, read_mapping

        params = read_mapping(args.parameters_file, "parameters file") if args.parameters_file else {}
        params.update(parse_overrides(args.param))
        out = run_notebook(args.notebook, params, args.output_dir, progress=True)
    print(f"executed notebook: {out}")


if __name__ == "__main__":
    main()
