#!/usr/bin/env python3
"""How many tasks a model solves, by views and selection method: the demo model's scorecard.

For each task set (held-out generated tasks, the real ARC-AGI-1 tasks inside the generator's
families, optionally the whole ARC-AGI-1 evaluation set), one greedy run of ``--views`` views per
test input (no adaptive rounds, no time budget) through the pipeline and one engine, then for the
first 1, 8, 16, ... views of each test input's plan:

- identity view exact: the share of test inputs the un-augmented view (single-view greedy) answers;
- mean view exact: the share of all views' answers that are exact (single-view accuracy, any view);
- pass_n: a correct answer among the views (the ceiling of every selection method);
- top-1 / top-2 per selection method (vote, cell-vote, judge, judge+vote): the correct grid ranked
  first / among the two attempts (top-2 is the competition score), mean over tasks;
- engine seconds: generation (the measured seconds per view times the views) plus the judge's scoring.

Figures go to ``--out``/solve_rate.json and, with ``--docs``, to a markdown file written from it.

    python bench/solve_rate.py --model models/arc-demo --docs docs/solve_rate.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from devkit.bench_tools import IN_FAMILY, machine, per_task_mean, view_subset, write_scorecard

from submission.engine import EngineSettings, exit_process, start_engine
from devkit.families import write_heldout
from submission.judge import Scorer, run_judge
from submission.metrics import evaluate
from submission.pipeline import plan_views, run
from submission.settings import RunSettings
from submission.predictions import read_predictions
from submission.prompts import load_tokenizer, read_model_format
from submission.select import SELECTORS, as_grid, get_selector, group_by_test_input, uses_judge
from submission.submit import build_submission, rank_test_inputs
from submission.tasks import load_challenges, load_solutions

METHODS = tuple(SELECTORS)  # every selection method of select.py


def measure_set(name, slug, challenges_path, solutions_path, engine, tokenizer, model, views, sizes, out, log,
                judge_top_k: int = 0):
    challenges = load_challenges(challenges_path)
    solutions, _ = load_solutions(solutions_path)
    fmt, _ = read_model_format(model)
    settings = RunSettings.of(augmentations=views, adaptive=False, time_budget=None,
                           encoder=fmt.get("encoder", RunSettings().format.encoder),
                           template=fmt.get("template", RunSettings().format.template))
    run_dir = out / slug
    log(f"{name}: {len(challenges.tasks)} tasks, {views} views per test input")
    record = run(challenges, engine, tokenizer, run_dir, settings, {"model": str(model)}, solutions_path, log=log)
    predictions = list(read_predictions(run_dir / "predictions.jsonl"))
    plans = plan_views(challenges.tasks, settings)
    speed = run_dir / "speed.json"  # a resumed run generates little: keep the first run's measured speed
    if record["prompts_sent"] >= len(predictions) // 2:
        speed.write_text(json.dumps({"seconds_per_view": record["stage_seconds"].get("generate", 0.0)
                                     / max(record["prompts_sent"], 1)}))
    seconds_per_view = json.loads(speed.read_text())["seconds_per_view"] if speed.exists() else None
    judge_settings = RunSettings.of(encoder=settings.format.encoder, template=settings.format.template,
                                    judge_top_k=max(judge_top_k, 1))
    methods = METHODS if judge_top_k else tuple(m for m in METHODS if not uses_judge(m))
    rows, per_score = [], None
    for k in sizes:
        subset = view_subset(predictions, plans, k)
        groups = group_by_test_input(subset)
        identity = {key: any(p.grid is not None and str(p.augmentation) == "d0"
                             and as_grid(p.grid) == as_grid(solutions[key[0]][key[1]].tolist()) for p in group)
                    for key, group in ((key, groups.get(key, [])) for key in plans)}
        metrics = evaluate(solutions, build_submission(challenges, subset, get_selector("vote")), subset)["overall"]
        row = {"views": k, "predictions": len(subset), "identity_view_exact": per_task_mean(identity),
               "mean_view_exact": metrics["accuracy"], "pass_n": metrics["pass_n"],
               "generation_seconds": round(seconds_per_view * k * len(plans), 1) if seconds_per_view else None}
        scores = None
        if judge_top_k:
            judge = run_judge(challenges, subset, judge_settings, run_dir / "judge_scores.jsonl",
                              Scorer(engine, tokenizer), model=str(model), log=lambda _: None)
            if judge.computed:  # scores cached by a smaller view count cost nothing now: price them all alike
                per_score = judge.engine_seconds / judge.computed
            row["judge_seconds"] = round(per_score * judge.needed, 1) if per_score else None
            scores = judge.scores
        for method in methods:
            selector = get_selector(method, scores)
            ranking = rank_test_inputs(challenges, subset, selector)
            top1, top2 = {}, {}
            for key in plans:
                ranked = ranking.get(key, [])
                truth = as_grid(solutions[key[0]][key[1]].tolist())
                top1[key] = bool(ranked) and ranked[0] == truth
                top2[key] = truth in ranked[:2]
            row[f"{method}_top1"] = per_task_mean(top1)
            row[f"{method}_top2"] = per_task_mean(top2)
        rows.append(row)
        log(f"{name}: {k} views: identity {row['identity_view_exact']:.3f}, pass_n {row['pass_n']:.3f}, "
            f"vote top-2 {row['vote_top2']:.3f}" + (f", judge top-2 {row['judge_top2']:.3f}" if scores else ""))
    return {"set": name, "judge_top_k": judge_top_k, "tasks": len(challenges.tasks), "test_inputs": len(plans), "views": views,
            "run_status": record["status"], "generation_seconds_per_view": seconds_per_view,
            "solved_top2_default": _solved_ids(challenges, solutions, predictions, plans, views), "rows": rows}


def _solved_ids(challenges, solutions, predictions, plans, views) -> list[str]:
    """Tasks whose every test input the default run (8 views, vote) solves within its two attempts."""
    subset = view_subset(predictions, plans, min(8, views))
    submission = build_submission(challenges, subset, get_selector("vote"))
    solved = []
    for task_id, truths in solutions.items():
        entries = submission.get(task_id, [])
        if entries and all(any(e.get(a) == t.tolist() for a in ("attempt_1", "attempt_2"))
                           for e, t in zip(entries, truths)):
            solved.append(task_id)
    return sorted(solved)


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# What the demo model solves",
        "",
        f"Written by `{result['command']}` on {m['cpu']} ({m['cores']} cores), vLLM on "
        f"{result['engine'].get('device')} ({result['engine'].get('dtype')}), commit {m['commit']}, "
        f"{result['seconds']:.0f} s in all. Model: `{result['model']}`. Greedy decoding, one answer per view; views "
        "in plan order (the 8 dihedral transforms, then colour permutations with shuffled examples). Scores are "
        "means over tasks; top-2 is the competition score.",
        "",
    ]
    for s in result["sets"]:
        judged = (f"judge: top {s['judge_top_k']} candidates (vote order) under 8 views" if s["judge_top_k"]
                  else "judge not run on this set (CPU time)")
        lines += [f"## {s['set']}: {s['tasks']} tasks, {s['test_inputs']} test inputs; {judged}", "",
                  "| views | identity view exact | mean view exact | pass_n | vote top-1 | vote top-2 | cell-vote top-2 "
                  "| judge top-1 | judge top-2 | judge+vote top-2 | generation s | judge s |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in s["rows"]:
            f = lambda key: f"{r[key]:.3f}" if key in r else "-"  # noqa: E731
            lines.append(
                f"| {r['views']} | {f('identity_view_exact')} | {f('mean_view_exact')} | {f('pass_n')} "
                f"| {f('vote_top1')} | {f('vote_top2')} | {f('cell-vote_top2')} | {f('judge_top1')} "
                f"| {f('judge_top2')} | {f('judge+vote_top2')} | {r['generation_seconds']} "
                f"| {r.get('judge_seconds') or '-'} |")
        solved = s["solved_top2_default"]
        shown = "the default run (8 views" if s["views"] >= 8 else f"{s['views']} view(s) (fewer than the default 8"
        lines += ["", f"Solved by {shown}, vote, top-2): {len(solved)} tasks"
                  + (f": {', '.join(solved)}" if 0 < len(solved) <= 40 else "") + ".", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "arc-demo")
    parser.add_argument("--views", type=int, default=32,
                        help="views per test input on the real in-family tasks (default: %(default)s)")
    parser.add_argument("--heldout-views", type=int, default=16,
                        help="views per test input on the held-out generated tasks (default: %(default)s)")
    parser.add_argument("--sizes", default="1,8,16,32", help="view counts to report (default: %(default)s)")
    parser.add_argument("--judge-sets", default="in-family",
                        help="sets whose candidates the judge scores (each score is about one prompt of engine "
                             "time; default: %(default)s)")
    parser.add_argument("--judge-top-k", type=int, default=4, help="candidates judged (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=200, help="held-out generated tasks (default: %(default)s)")
    parser.add_argument("--heldout-max-side", type=int, default=12)
    parser.add_argument("--heldout-seed", type=int, default=0)
    parser.add_argument("--arc", type=Path, default=ROOT.parent / "shared" / "data" / "arc-agi-1",
                        help="ARC-AGI-1 in Kaggle's layout, for the whole evaluation set (skipped if absent)")
    parser.add_argument("--evaluation-views", type=int, default=1,
                        help="views on the whole evaluation set, 0 to skip it (default: %(default)s)")
    parser.add_argument("--sets", default="heldout,in-family,evaluation")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "solve_rate")
    parser.add_argument("--docs", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--cpu-kv-cache-gib", type=float, default=2.0)
    args = parser.parse_args(argv)

    started = time.time()
    sizes = [int(x) for x in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, flush=True)  # noqa: E731
    info = machine()
    engine = start_engine(EngineSettings(str(args.model), max_model_len=8192, cpu_kv_cache_gib=args.cpu_kv_cache_gib),
                          log=log)
    tokenizer = load_tokenizer(str(args.model), log=log)
    sets = []
    judge_of = lambda name: args.judge_top_k if name in args.judge_sets.split(",") else 0  # noqa: E731
    try:
        wanted = args.sets.split(",")
        if "heldout" in wanted:
            ch, sol = write_heldout(args.out / "heldout-tasks", args.heldout, args.heldout_seed, args.heldout_max_side)
            sets.append(measure_set(f"held-out generated (seed {args.heldout_seed}, sides up to "
                                    f"{args.heldout_max_side})", "heldout", ch, sol, engine, tokenizer, args.model,
                                    args.heldout_views, [k for k in sizes if k <= args.heldout_views], args.out, log,
                                    judge_of("heldout")))
        if "in-family" in wanted:
            sets.append(measure_set("real ARC-AGI-1 tasks in the families", "in-family", IN_FAMILY / "challenges.json",
                                    IN_FAMILY / "solutions.json", engine, tokenizer, args.model, args.views,
                                    [k for k in sizes if k <= args.views], args.out, log, judge_of("in-family")))
        evaluation = args.arc / "arc-agi_evaluation_challenges.json"
        if "evaluation" in wanted and args.evaluation_views and evaluation.exists():
            sets.append(measure_set("whole ARC-AGI-1 evaluation set", "evaluation", evaluation,
                                    args.arc / "arc-agi_evaluation_solutions.json", engine, tokenizer, args.model,
                                    args.evaluation_views, [1] + [k for k in sizes if 1 < k <= args.evaluation_views],
                                    args.out, log, judge_of("evaluation")))
        engine_info = engine.describe()
    finally:
        engine.close()
    print(json.dumps({s["set"]: s["rows"][-1] for s in sets}, indent=1))
    write_scorecard("solve_rate.py", argv, args, {"model": str(args.model), "machine": info, "engine": engine_info,
                                                   "seconds": round(time.time() - started, 1), "sets": sets},
                    "solve_rate.json", markdown)
    return 0


if __name__ == "__main__":
    exit_process(main)
