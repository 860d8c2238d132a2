#!/usr/bin/env python3
"""Task sets for measuring the demo model, in Kaggle's layout (challenges + solutions JSON).

  real       the real ARC tasks inside the families of devkit/families.py, as the checker finds
             them (every train and test pair explained by one family); writes the list with each
             task's family and the tasks themselves. Measurement only: the model never trains on them.
  generated  N generated tasks from the held-out stream (never a training seed).

    python scripts/family_tasks.py real --arc ../shared/data/arc-agi-1 --out data/arc-agi-1-in-family
    python scripts/family_tasks.py generated --n 200 --out runs/heldout-200
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devkit.families import explain, generated_tasks, raw_task, task_pairs, write_set
from submission.tasks import grid_to_list, load_challenges, load_solutions

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("training", "evaluation")


def cmd_real(args) -> int:
    challenges, solutions, listing = {}, {}, []
    for split in SPLITS:
        ch = load_challenges(args.arc / f"arc-agi_{split}_challenges.json")
        sol, _ = load_solutions(args.arc / f"arc-agi_{split}_solutions.json")
        for task_id, task in sorted(ch.tasks.items()):
            if task_id not in sol:
                continue
            found = explain(task_pairs(task, sol[task_id]))
            if found:
                listing.append({"task": task_id, "split": split, "family": found[0].family,
                                "params": found[0].params})
                challenges[task_id] = raw_task(task)
                solutions[task_id] = [grid_to_list(g) for g in sol[task_id]]
    write_set(args.out, challenges, solutions)
    (args.out / "families.json").write_text(json.dumps(listing, indent=1) + "\n")
    for split in SPLITS:
        print(f"{split}: {sum(1 for x in listing if x['split'] == split)} tasks inside the families")
    print(f"wrote {args.out}/challenges.json, solutions.json, families.json ({len(listing)} tasks)")
    return 0


def cmd_generated(args) -> int:
    tasks = generated_tasks(args.seed, args.n, purpose="heldout", max_side=args.max_side)
    write_set(args.out, {g.task.id: raw_task(g.task) for g in tasks},
              {g.task.id: [grid_to_list(g.solution)] for g in tasks})
    (args.out / "families.json").write_text(json.dumps(
        [{"task": g.task.id, "family": g.family, "params": g.params} for g in tasks], indent=1) + "\n")
    print(f"wrote {args.n} held-out generated tasks (seed {args.seed}) to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("real", help="real ARC tasks inside the families (the checker's list)")
    p.add_argument("--arc", type=Path, default=ROOT.parent / "shared/data/arc-agi-1",
                   help="folder of the arc-agi_{training,evaluation}_{challenges,solutions}.json files")
    p.add_argument("--out", type=Path, default=ROOT / "data/arc-agi-1-in-family")
    p.set_defaults(func=cmd_real)
    p = sub.add_parser("generated", help="held-out generated tasks")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-side", type=int, default=12)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_generated)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
