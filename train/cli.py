"""Shared command-line plumbing for the train entry points: logging and one-line errors.

Importing it is cheap (no torch): the entry points import it before parsing, and ``--help``
must answer instantly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", force=True
    )


def run_cli(main: Callable[[], int], prog: str, *, verbose: bool = False) -> int:
    """Run ``main``; a user error becomes one line on stderr and exit code 2, not a traceback.

    ``verbose`` keeps the traceback, for when the one line is not enough to find a bug.
    """
    from bnfold.checkpoint import CheckpointError
    from train.imagefolder import DataError

    try:
        return main()
    except (DataError, CheckpointError, ValueError, OSError) as e:
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


def add_image_set_flags(p: argparse.ArgumentParser) -> None:
    """--skip-bad-images and --synthetic-dir, the same for every tool that decodes an image set."""
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip unreadable image files (with a count) instead of stopping",
    )
    p.add_argument(
        "--synthetic-dir", default="artifacts/data", help="cache folder of the synthetic sets"
    )


def parse_and_run(
    parser: argparse.ArgumentParser,
    main: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` before any heavy import, set up logging (``-v``: debug) and run ``main``."""
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    setup_logging(verbose)
    return run_cli(lambda: main(args), parser.prog, verbose=verbose)
