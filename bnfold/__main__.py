"""``python -m bnfold MODEL -o OUT [--check]``: see :mod:`bnfold.cli`."""

import sys

from bnfold.cli import get_args_parser, main

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
