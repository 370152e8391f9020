"""``python -m lab2land``: the same command as ``lab2land``."""

import sys

from lab2land.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="lab2land"))
