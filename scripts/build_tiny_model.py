#!/usr/bin/env python3
"""A tiny deterministic Qwen2 that vLLM loads like Qwen2.5 (the tests' and benches' model):
devkit/tiny_model.py (`python scripts/build_tiny_model.py --help`).

devkit/ is the development package, never shipped: `make setup` installs it (pip install -e .).
"""

from devkit.tiny_model import main

if __name__ == "__main__":
    raise SystemExit(main())
