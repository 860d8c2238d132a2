"""Kill rate per module from mutmut's results (mutants/<module>.py.meta), after `make mutation`.

A mutant is killed when the fast suite fails on it (or times out); it survives when the suite
passes; "no tests" means no test ran the mutated function. A survivor listed in the equivalents
file (docs/mutation_equivalents.txt: one `mutant name  fingerprint  # why no test can tell it apart`
per line) counts as explained; every other survivor is printed, and the script exits 1 while any is
left. mutmut numbers a function's mutants afresh when the function changes, so a name can come to
stand for another mutant: the fingerprint (the first 8 hex digits of the sha1 of the lines the
mutant changes, `--fingerprint NAME...` prints them) must match the mutant now in mutants/, else the
entry explains nothing. Entries whose mutant now dies, no longer exists or changed are printed as
stale, to be re-checked with `mutmut show NAME`.

As a pytest plugin (pyproject's [tool.mutmut] runs the tests with `-p devkit.mutation_summary`) it
keeps mutmut's stats pass to the test process itself: see pytest_configure.

The script also exits 1, saying why, when mutmut did not finish (mutants left "not checked": it stopped
early, e.g. in its stats stage, with no mutants/mutmut-stats.json) or when it checked mutants and killed
none (the tests ran the original submission/ instead of the mutated copy in mutants/).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import json
import os
import re
import sys
from collections import Counter
from functools import cache
from pathlib import Path

KILLED = {1, 3, 36, -24, 24, 152, 255}  # test failure, pytest internal error, timeouts
TIMED_OUT = {36, -24, 24, 152, 255}  # mutmut's wall or CPU limit (SIGXCPU): a loop, or a slow fixture
SURVIVED = {0}
NO_TESTS = {5, 33}
DEFAULT_EQUIVALENTS = Path(__file__).resolve().parent.parent / "docs" / "mutation_equivalents.txt"


def read_entries(path: Path) -> dict[str, tuple[str | None, str]]:
    """Mutant name -> (fingerprint or None, why it is equivalent), from lines `name  [fingerprint]  # why`
    (blank and # lines skipped)."""
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        head, _, why = line.partition("#")
        fields = head.split()
        if fields:
            found[fields[0]] = (fields[1] if len(fields) > 1 else None, why.strip())
    return found


def read_equivalents(path: Path) -> dict[str, str]:
    """Mutant name -> why it is equivalent."""
    return {name: why for name, (_, why) in read_entries(path).items()}


@cache
def _functions(source: Path) -> dict[str, list[str]]:
    """Every function of a mutated file (methods included) by name: its source lines."""
    text = source.read_text()
    lines = text.splitlines()
    return {node.name: lines[node.lineno - 1:node.end_lineno] for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def fingerprint(mutants: Path, name: str) -> str | None:
    """The first 8 hex digits of the sha1 of the lines mutant ``name`` changes in its function, as
    mutants/ holds it now (None: no such mutant there)."""
    module, _, function = name.rpartition(".")
    source = mutants / (module.replace(".", "/") + ".py")
    if not source.is_file():
        return None
    functions = _functions(source)
    orig = re.sub(r"__mutmut_\d+$", "__mutmut_orig", function)
    mutant, original = functions.get(function), functions.get(orig)
    if mutant is None or original is None:
        return None
    # the names apart (a mutant may change the signature: a default)
    mutant, original = [mutant[0].replace(function, "", 1), *mutant[1:]], [original[0].replace(orig, "", 1), *original[1:]]
    changed = [line[0] + line[2:].strip() for line in difflib.ndiff(original, mutant) if line[:2] in ("- ", "+ ")]
    return hashlib.sha1("\n".join(changed).encode()).hexdigest()[:8]


def status_of(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else f"other ({code})"


def summarise(mutants: Path, entries: dict[str, tuple[str | None, str]]
              ) -> tuple[dict[str, Counter], dict[str, list[str]], list[str], list[str]]:
    """(per module: mutants by status, per module: unexplained survivors, stale entries, the killed
    that timed out).

    ``entries`` as read_entries gives them; an entry without a fingerprint explains its name as it is."""
    counts: dict[str, Counter] = {}
    survivors: dict[str, list[str]] = {}
    timed_out = []
    current = set()  # entries that explain a survivor now, and those whose mutant was not checked
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = str(meta.relative_to(mutants)).removesuffix(".meta")
        codes = json.loads(meta.read_text()).get("exit_code_by_key", {})
        tally = Counter()
        for name, code in codes.items():
            status = status_of(code)
            listed = name in entries and entries[name][0] in (None, fingerprint(mutants, name))
            if status in ("survived", "no tests") and listed:
                status = "equivalent"
                current.add(name)
            elif status in ("survived", "no tests"):
                survivors.setdefault(module, []).append(name)
            elif status == "not checked" and listed:
                current.add(name)
            if code in TIMED_OUT:
                timed_out.append(name)
            tally[status] += 1
        counts[module] = tally
    return counts, survivors, sorted(set(entries) - current), timed_out


def unfinished(total: Counter, mutants: Path) -> list[str]:
    """Why these figures are not a finished run's, if they are not (empty when they are)."""
    problems = []
    if total["not checked"]:
        stats = mutants / "mutmut-stats.json"
        problems.append(f"{total['not checked']} mutants not checked: mutmut stopped before testing them"
                        + ("" if stats.is_file() else f" ({stats} missing: it stopped in its stats stage)")
                        + "; read mutmut's output (docs/mutation.md, 'Running it')")
    checked = sum(total.values()) - total["not checked"]
    if checked and not total["killed"]:
        problems.append(f"none of {checked} checked mutants was killed: the tests ran the original submission/, "
                        f"not the mutated copy in {mutants}/")
    return problems


def pytest_configure(config) -> None:
    """Under mutmut's stats pass, take MUTANT_UNDER_TEST=stats out of the environment that subprocesses
    inherit. mutmut records which tests reach which function in its own process only, and its trampolines
    there fall back to the mode mutmut set in-process; a subprocess that inherits "stats" (build_bundle.py
    or the kernel run from a temporary folder) looks for mutmut's configuration in its working directory
    when it reaches a mutated function, finds none and fails: mutmut then stops, "failed to collect stats".
    Mutant runs keep the variable, so subprocesses run the mutant too."""
    if os.environ.get("MUTANT_UNDER_TEST") == "stats":
        del os.environ["MUTANT_UNDER_TEST"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"))
    parser.add_argument("--equivalents", type=Path, default=DEFAULT_EQUIVALENTS,
                        help="survivors explained as equivalent (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--fingerprint", nargs="+", metavar="NAME",
                        help="print `NAME  fingerprint` for these mutants (for the equivalents file) and stop")
    args = parser.parse_args(argv)
    if not args.mutants.is_dir():
        sys.exit(f"error: {args.mutants} not found: run `make mutation` first")
    if args.fingerprint:
        prints = {name: fingerprint(args.mutants, name) for name in args.fingerprint}
        for name, found in prints.items():
            print(f"{name}  {found}" if found else f"{name}: no such mutant in {args.mutants}", flush=True)
        return 0 if all(prints.values()) else 1
    counts, survivors, stale, timed_out = summarise(args.mutants, read_entries(args.equivalents))
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
    if timed_out:
        print(f"\n{len(timed_out)} of the killed timed out (a mutant that loops, or tests slower than mutmut "
              "measured them: re-check with `mutmut show NAME`):\n  " + "\n  ".join(timed_out))
    for module, names in survivors.items():
        print(f"\n{module}: {len(names)} not killed and not explained\n  " + "\n  ".join(names))
    if stale:
        print(f"\n{len(stale)} listed in {args.equivalents.name} whose mutant now dies, is gone or changed "
              "(stale: re-check with `mutmut show NAME`):\n  " + "\n  ".join(stale))
    problems = unfinished(total, args.mutants)
    for problem in problems:
        print(f"\nerror: {problem}")
    if args.json:
        args.json.write_text(json.dumps({"modules": {m: dict(t) for m, t in counts.items()}, "total": dict(total),
                                         "survivors": survivors, "stale_equivalents": stale, "timed_out": timed_out,
                                         "unfinished": problems}, indent=1))
    return 1 if survivors or problems else 0


if __name__ == "__main__":
    sys.exit(main())
