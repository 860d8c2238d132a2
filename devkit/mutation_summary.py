#!/usr/bin/env python3
"""Kill rate per module from mutmut's results (mutants/<module>.py.meta), after `make mutation`.

A mutant is killed when the fast suite fails on it (or times out); it survives when the suite
passes; "no tests" means no test ran the mutated function. A survivor listed in the equivalents
file (docs/mutation_equivalents.txt: one `mutant name  # why no test can tell it apart` per line)
counts as explained; every other survivor is printed, and the script exits 1 while any is left.
Names listed there that now die or no longer exist are printed as stale (mutmut numbers a
function's mutants afresh when the function changes).
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
DEFAULT_EQUIVALENTS = Path(__file__).resolve().parent.parent / "docs" / "mutation_equivalents.txt"


def read_equivalents(path: Path) -> dict[str, str]:
    """Mutant name -> why it is equivalent, from lines `name  # reason` (blank and # lines skipped)."""
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        name, _, why = line.partition("#")
        if name.strip():
            found[name.strip()] = why.strip()
    return found


def status_of(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else f"other ({code})"


def summarise(mutants: Path, equivalents: dict[str, str]) -> tuple[dict[str, Counter], dict[str, list[str]], list[str]]:
    """(per module: mutants by status, per module: unexplained survivors, stale equivalents)."""
    counts: dict[str, Counter] = {}
    survivors: dict[str, list[str]] = {}
    explained = set()
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = str(meta.relative_to(mutants)).removesuffix(".meta")
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        tally = Counter()
        for name, code in codes.items():
            status = status_of(code)
            if status in ("survived", "no tests") and name in equivalents:
                status = "equivalent"
                explained.add(name)
            elif status in ("survived", "no tests"):
                survivors.setdefault(module, []).append(name)
            tally[status] += 1
        counts[module] = tally
    return counts, survivors, sorted(set(equivalents) - explained)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--equivalents", type=Path, default=DEFAULT_EQUIVALENTS,
                        help="survivors explained as equivalent (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not args.mutants.is_dir():
        sys.exit(f"error: {args.mutants} not found: run `make mutation` first")
    counts, survivors, stale = summarise(args.mutants, read_equivalents(args.equivalents))
    columns = ("killed", "equivalent", "survived", "no tests", "not checked")
    total = Counter()
    print(f"{'module':28} {'mutants':>8} " + " ".join(f"{c:>11}" for c in columns) + f" {'kill rate':>10}")
    for module, tally in [*counts.items(), ("all", None)]:
        if tally is None:
            tally = total
        else:
            total.update(tally)
        n = sum(tally.values())
        print(f"{module:28} {n:8} " + " ".join(f"{tally[c]:11}" for c in columns)
              + f" {tally['killed'] / max(n, 1):10.1%}")
    for module, names in survivors.items():
        print(f"\n{module}: {len(names)} not killed and not explained\n  " + "\n  ".join(names))
    if stale:
        print(f"\n{len(stale)} listed in {args.equivalents.name} but not surviving now (stale):\n  " + "\n  ".join(stale))
    if args.json:
        args.json.write_text(json.dumps({"modules": {m: dict(t) for m, t in counts.items()}, "total": dict(total),
                                         "survivors": survivors, "stale_equivalents": stale}, indent=1))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
