"""``python -m export``: not built yet (issue 4); says so instead of failing obscurely."""

import sys

if __name__ == "__main__":
    print("python -m export: not built yet (the export issue has not landed)", file=sys.stderr)
    sys.exit(0)
