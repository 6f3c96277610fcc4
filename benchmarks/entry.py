"""What every ``python -m benchmarks.X`` does around its ``main``: exit codes and Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn


def run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser) -> NoReturn:
    """Parse the command line, run ``main`` and exit with its code; Ctrl-C exits 130 quietly."""
    try:
        raise SystemExit(main(parser.parse_args()))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
