"""Shared command-line plumbing for the train entry points: logging and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from bnfold.checkpoint import CheckpointError
from train.imagefolder import DataError

USER_ERRORS: tuple[type[Exception], ...] = (DataError, CheckpointError, ValueError, OSError)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", force=True
    )


def run_cli(main: Callable[[], int], prog: str, *, verbose: bool = False) -> int:
    """Run ``main``; a user error becomes one line on stderr and exit code 2, not a traceback.

    ``verbose`` keeps the traceback, for when the one line is not enough to find a bug.
    """
    try:
        return main()
    except USER_ERRORS as e:
        if verbose:
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted (the last completed epoch's checkpoint is intact)",
            file=sys.stderr,
        )
        return 130
