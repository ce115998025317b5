"""The `anira` command: one entry point for the library's command-line tools.

    anira train --config configs/mano_tiny.yaml decider=online steps=2000
    anira notebooks list | run 01_mano -p steps=500
    anira findings configs/studies/findings.yaml
    anira calibration configs/studies/calibration.yaml NAME --seeds 0,1,2
    anira evaluate --checkpoints runs/08_training_dynamics/mano/early
    anira clrs --split eval

Each subcommand is the module's own command line (`python -m anira_lib.training.train` and so on, which keep
working); its module is imported only when that subcommand runs.
"""

from __future__ import annotations

import importlib
import sys
from contextlib import contextmanager

# subcommand -> (module, one line for `anira --help`)
COMMANDS = {
    "train": ("anira_lib.training.train", "train one run from a YAML config and key=value overrides (resumable)"),
    "notebooks": ("anira_lib.notebooks", "list the notebooks or run one headlessly with parameters"),
    "findings": ("anira_lib.studies.findings_run", "the paper's claims as verdicts over seeds (writes docs/findings.md)"),
    "calibration": ("anira_lib.studies.calibration", "screen candidate defaults as fixed-1 against fixed-D"),
    "evaluate": ("anira_lib.evaluation.checkpoint_eval", "accuracy and d̄ per knob at every kept checkpoint of a run"),
    "clrs": ("anira_lib.tasks.clrs", "generate and cache CLRS-Text splits under data/clrs/"),
}


def program_name(module: str) -> str:
    """What a command calls itself in its usage line: `anira train` when run through `anira`,
    else `python -m anira_lib.training.train` (argparse would say `train.py`)."""
    return sys.argv[0] if sys.argv and sys.argv[0].startswith("anira ") else f"python -m {module}"


@contextmanager
def one_line_errors(command: str, debug: bool = False, hint: str = " (run with --debug for the traceback)"):
    """Turn any error inside into one line, `<command>: error: <message><hint>`, and exit with it;
    with `debug` the exception goes up with its traceback. Ctrl-C is left to the caller."""
    try:
        yield
    except Exception as err:  # one line a user can act on; the traceback behind --debug
        if debug:
            raise
        raise SystemExit(f"{command}: error: {err}{hint}") from None


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
