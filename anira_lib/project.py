"""Where a notebook's relative paths point, and where its figures go.

Notebooks name their runs relative to the repository root (`runs/01_mano`). The terminal runner
(`python -m anira_lib.notebooks run`) starts kernels there, but JupyterLab starts each kernel in the
notebook's own folder, where `runs/01_mano` would resolve inside that folder: a notebook would
miss the runs the others left and train its own. `work_from_project_root()` makes both the same.

Figures: a notebook run writes its figures beside its runs (`<out_dir>/figures/`), so running a
notebook never rewrites the figures committed in `figures/`; `figure_dir="figures"` refreshes those
on purpose.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: str | Path | None = None) -> Path | None:
    """The checkout that holds `start` (default: the working directory): the nearest folder, from
    `start` upwards, with both `pyproject.toml` and `anira_lib/`. None outside a checkout."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "anira_lib").is_dir():
            return folder
    return None


def work_from_project_root(start: str | Path | None = None) -> Path:
    """Make the checkout's root the working directory when a kernel started in its `notebooks/`
    folder (JupyterLab does that), and say so in one line. Anywhere else nothing changes: a user's
    own working directory is theirs. Returns the working directory."""
    here = Path(start or Path.cwd()).resolve()
    root = project_root(here)
    if root is not None and here == root / "notebooks":
        os.chdir(root)
        print(f"working directory: {root} (paths such as runs/01_mano are relative to it)")
        return root
    return Path.cwd()


def figure_folder(figure_dir: str | Path, out_dir: str | Path) -> Path:
    """The folder a notebook writes its figures to: `figure_dir` if given, else `<out_dir>/figures`."""
    return Path(figure_dir) if str(figure_dir) else Path(out_dir) / "figures"
