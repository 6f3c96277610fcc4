"""Shared command-line plumbing for the train entry points: logging and one-line errors."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from train.checkpoint import CheckpointError
from train.imagefolder import DataError

USER_ERRORS: tuple[type[Exception], ...] = (DataError, CheckpointError, ValueError, OSError)


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", force=True
    )


def run_cli(main: Callable[[], int], prog: str) -> int:
    """Run ``main``; a user error becomes one line on stderr and exit code 2, not a traceback."""
    try:
        return main()
    except USER_ERRORS as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted (the last completed epoch's checkpoint is intact)",
            file=sys.stderr,
        )
        return 130
