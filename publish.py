#!/usr/bin/env python3
"""Publish this project's notebooks: ``python publish.py build`` (see README.md)."""

import sys

from lab2land.cli import main

if __name__ == "__main__":
    sys.exit(main())
