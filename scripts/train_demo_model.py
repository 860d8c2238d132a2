#!/usr/bin/env python3
"""Train the demo model from a seed (resumes after a stop):
devkit/demo_model.py (`python scripts/train_demo_model.py --help`).

devkit/ is the development package, never shipped: `make setup` installs it (pip install -e .).
"""

from devkit.demo_model import main

if __name__ == "__main__":
    raise SystemExit(main())
