#!/usr/bin/env python3
"""Kill rate per module from mutmut's results, after make mutation:
devkit/mutation_summary.py (`python scripts/mutation_summary.py --help`).

devkit/ is the development package, never shipped: `make setup` installs it (pip install -e .).
"""

from devkit.mutation_summary import main

if __name__ == "__main__":
    raise SystemExit(main())
