"""The `anira` console script: one entry point for the library's command-line tools.

    anira train --config configs/mano_tiny.yaml decider=online steps=2000
    anira notebooks list | run 01_mano -p steps=500
    anira findings configs/studies/findings.yaml
    anira calibration configs/studies/calibration.yaml NAME --seeds 0,1,2
    anira evaluate --checkpoints runs/08_training_dynamics/mano/early
    anira clrs --split eval

It lives outside the `anira_lib` package on purpose: importing `anira_lib` loads torch and transformers
and registers the model with transformers' Auto classes (seconds), so `anira --help` and a mistyped
command answer at once only if nothing of the package is imported before a subcommand is chosen.
Each subcommand is its module's own command line (`python -m anira_lib.training.train` and so on, which
keep working), imported only when that subcommand runs.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module, one line for `anira --help`)
COMMANDS = {
    "train": ("anira_lib.training.train", "train one run from a YAML config and key=value overrides (resumable)"),
    "notebooks": ("anira_lib.notebooks", "list the notebooks or run one headlessly with parameters"),
    "findings": ("anira_lib.studies.findings_run", "the paper's claims as verdicts over seeds (writes docs/findings.md)"),
    "calibration": ("anira_lib.studies.calibration", "screen candidate defaults as fixed-1 against fixed-D"),
    "evaluate": ("anira_lib.evaluation.checkpoint_eval", "accuracy and d̄ per knob at every kept checkpoint of a run"),
    "clrs": ("anira_lib.tasks.clrs", "generate and cache CLRS-Text splits under data/clrs/"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {line}" for name, (_, line) in COMMANDS.items())
    return (f"usage: anira COMMAND [ARGS ...]\n\nToken-level adaptive computation in recurrent Transformers.\n\n"
            f"commands:\n{rows}\n\n`anira COMMAND --help` shows a command's options.")


def main(argv: list[str] | None = None) -> int | None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        raise SystemExit(f"anira: unknown command {name!r}; use one of {', '.join(COMMANDS)} (anira --help).")
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv[0] = f"anira {name}"  # argparse names the program after argv[0]
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
