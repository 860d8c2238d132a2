#!/usr/bin/env python3
"""Kill rate per module from mutmut's results (mutants/<module>.py.meta), after `make mutation`.

A mutant is killed when the fast suite fails on it (or times out); it survives when the suite
passes; "no tests" means no test ran the mutated function. Prints one line per module and the
total, and the surviving mutants' names (`mutmut show NAME` prints a mutant's diff).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255}  # test failure, pytest internal error, timeouts
SURVIVED = {0}
NO_TESTS = {5, 33}


def summarise(mutants: Path) -> tuple[dict[str, Counter], dict[str, list[str]]]:
    counts: dict[str, Counter] = {}
    survivors: dict[str, list[str]] = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = str(meta.relative_to(mutants)).removesuffix(".meta")
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        tally = Counter()
        for name, code in codes.items():
            status = ("killed" if code in KILLED else "survived" if code in SURVIVED
                      else "no tests" if code in NO_TESTS else "not checked" if code is None else f"other ({code})")
            tally[status] += 1
            if status in ("survived", "no tests"):
                survivors.setdefault(module, []).append(name)
        counts[module] = tally
    return counts, survivors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.mutants.is_dir():
        sys.exit(f"error: {args.mutants} not found: run `make mutation` first")
    counts, survivors = summarise(args.mutants)
    total = Counter()
    print(f"{'module':32} {'mutants':>8} {'killed':>8} {'survived':>9} {'no tests':>9} {'kill rate':>10}")
    for module, tally in counts.items():
        total.update(tally)
        n = sum(tally.values())
        print(f"{module:32} {n:8} {tally['killed']:8} {tally['survived']:9} {tally['no tests']:9} "
              f"{tally['killed'] / max(n, 1):10.1%}")
    n = sum(total.values())
    print(f"{'all':32} {n:8} {total['killed']:8} {total['survived']:9} {total['no tests']:9} "
          f"{total['killed'] / max(n, 1):10.1%}")
    for module, names in survivors.items():
        print(f"\n{module}: {len(names)} not killed\n  " + "\n  ".join(names))
    if args.json:
        args.json.write_text(json.dumps({"modules": {m: dict(t) for m, t in counts.items()},
                                         "survivors": survivors}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
