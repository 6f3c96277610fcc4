"""``python -m demo``: not built yet (issue 5); says so instead of failing obscurely."""

import sys

if __name__ == "__main__":
    print("python -m demo: not built yet (the demo issue has not landed)", file=sys.stderr)
    sys.exit(0)
