"""What every command line of the library shares: its name in usage lines and one-line errors. The
`anira` launcher itself is the top-level module `anira_cli`, outside this package so that it starts
without importing torch; `COMMANDS`, `usage` and `main` are its, re-exported here."""

from __future__ import annotations

import sys
from contextlib import contextmanager

from anira_cli import COMMANDS, main, usage  # noqa: F401  (the launcher, re-exported)


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


if __name__ == "__main__":
    sys.exit(main())
