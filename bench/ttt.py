"""What test-time fine-tuning buys: `run` with --ttt off, task and shared on the same tasks.

Each condition is the project's own command (``python -m submission run``) on a task set with its
solutions, at the same views and no time budget, so that the seconds spent training and predicting
are measured rather than capped; the table puts them beside the scores (top-2 with vote, pass_n,
single-view accuracy) so that an equal-time comparison can be read off. Figures come from each
run's run.json and metrics.json.

    python bench/ttt.py --model models/arc-demo --sets in-family --docs docs/ttt.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from devkit.bench_tools import machine, write_scorecard
from submission.settings import TTT_MODES

SETS = {
    "in-family": ROOT / "data" / "arc-agi-1-in-family",  # real ARC-AGI-1 tasks inside the families
}


def heldout_set(n: int, out: Path) -> Path:
    """``n`` held-out generated tasks (the held-out stream of scripts/family_tasks.py, seed 0)."""
    folder = out / f"heldout-{n}"
    if not (folder / "challenges.json").exists():
        subprocess.run([sys.executable, "scripts/family_tasks.py", "generated", "--n", str(n), "--out", str(folder)],
                       cwd=ROOT, check=True, capture_output=True)
    return folder


def run_condition(model: Path, folder: Path, out: Path, mode: str, args) -> dict:
    command = [sys.executable, "-m", "submission", "run", "--challenges", str(folder / "challenges.json"),
               "--solutions", str(folder / "solutions.json"), "--model", str(model), "--out", str(out),
               "--augmentations", str(args.views), "--time-budget", "0", "--ttt", mode, "--fresh",
               "--ttt-steps", str(args.ttt_steps), "--ttt-examples-per-step", str(args.ttt_examples_per_step),
               "--ttt-learning-rate", str(args.ttt_learning_rate), "--ttt-rank", str(args.ttt_rank)]
    if mode == "shared":
        command[command.index("--ttt-steps") + 1] = str(args.shared_steps)
    started = time.monotonic()
    log_path = out.with_suffix(".log")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        done = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={"VLLM_CPU_KVCACHE_SPACE": "2", **os.environ})
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} failed; see {log_path}")
    record = json.loads((out / "run.json").read_text())
    scored = json.loads((out / "metrics.json").read_text())
    metrics = scored["overall"]
    ttt = record.get("ttt") or {}
    return {
        "mode": mode, "score_top2_vote": metrics["score"], "pass_n": metrics["pass_n"],
        "view_accuracy": metrics["accuracy"], "tasks": metrics["tasks"], "test_inputs": metrics["test_inputs"],
        "adapters": len(ttt.get("adapters", {})), "training_s": round(ttt.get("seconds", 0.0), 1),
        "predicting_s": round(record["stage_seconds"].get("generate", 0.0), 1),
        "wall_s": round(time.monotonic() - started, 1),
        "solved": sorted(t["task_id"] for t in scored["tasks"] if t["score"] > 0),
    }


def markdown(result: dict) -> str:
    lines = [
        "# Test-time fine-tuning on the demo model",
        "",
        f"Written by `{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
        f"commit {result['machine']['commit']}. Model: `{result['model']}`. Each row is one "
        f"`python -m submission run` at {result['views']} views (greedy, vote), no time budget; per-task "
        f"adapters: rank {result['ttt']['rank']}, {result['ttt']['steps']} steps of "
        f"{result['ttt']['examples_per_step']} augmented leave-one-out examples, learning rate {result['ttt']['learning_rate']}; the shared adapter: "
        f"{result['ttt']['shared_steps']} steps. Training runs before the engine starts; predicting is the "
        "engine's generation time.",
        "",
    ]
    for name, rows in result["sets"].items():
        first = rows[0]
        lines += [f"## {name}: {first['tasks']} tasks, {first['test_inputs']} test inputs", "",
                  "| ttt | adapters | top-2 (vote) | pass_n | single-view accuracy | training s | predicting s | "
                  "wall s | solved |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['mode']} | {r['adapters']} | {r['score_top2_vote']:.3f} | {r['pass_n']:.3f} | "
                         f"{r['view_accuracy']:.3f} | {r['training_s']:.0f} | {r['predicting_s']:.0f} | "
                         f"{r['wall_s']:.0f} | {', '.join(r['solved'] or []) or '-'} |")
        lines.append("")
    lines += result.get("notes", [])
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=ROOT / "models" / "arc-demo")
    p.add_argument("--sets", default="in-family", help="comma-separated: in-family, heldout-N (N generated tasks)")
    p.add_argument("--modes", default=",".join(TTT_MODES), help="comma-separated of off, task, shared")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--ttt-steps", type=int, default=16)
    p.add_argument("--shared-steps", type=int, default=64)
    p.add_argument("--ttt-examples-per-step", type=int, default=4)
    p.add_argument("--ttt-learning-rate", type=float, default=1e-3)
    p.add_argument("--ttt-rank", type=int, default=8)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-ttt")
    p.add_argument("--docs", type=Path, help="also write the table here (markdown)")
    args = p.parse_args(argv)
    result = {"model": str(args.model), "views": args.views, "machine": machine(),
              "ttt": {"rank": args.ttt_rank, "steps": args.ttt_steps, "shared_steps": args.shared_steps,
                      "examples_per_step": args.ttt_examples_per_step, "learning_rate": args.ttt_learning_rate},
              "sets": {}}
    for name in args.sets.split(","):
        folder = heldout_set(int(name.split("-")[1]), args.out) if name.startswith("heldout-") else SETS[name]
        rows = []
        for mode in args.modes.split(","):
            print(f"{name}: ttt {mode} ...", flush=True)
            rows.append(run_condition(args.model, folder, args.out / name / mode, mode, args))
            print(json.dumps(rows[-1]), flush=True)
        result["sets"][name] = rows
        write_scorecard("ttt.py", argv, args, result, "ttt.json", markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
