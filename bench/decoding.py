#!/usr/bin/env python3
"""Which decoding solves the most per engine-second: greedy, sampling, beam search and depth-first
enumeration (dfs), each with the vote, judge and found+judge selectors, on the demo model.

For each task set (held-out generated tasks, the real ARC-AGI-1 tasks inside the generator's
families) and each decoding, one run through the pipeline on one engine (no adaptive rounds, no
time budget); runs made at 16 views are also read at their first 8 views. Per row:

- candidates per view: predictions per (test input, view) that parsed to a grid or not;
- parsed: the share of them that parsed to a grid (what --restrict-vocabulary can change);
- pass_n: a correct answer among the candidates (the ceiling of every selector);
- top-2 per selector (the competition score, mean over tasks);
- generation seconds (measured, scaled to the views read) and judge seconds (the judge's scoring of
  its top-4 candidates under 8 views, shared by the judge selectors; one cache per set, so a
  candidate that two decodings found is scored once and priced alike in both).

    python bench/decoding.py --docs docs/decoding.md
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from devkit.bench_tools import forget_cached_prompts, machine, write_scorecard
from devkit.bench_tools import IN_FAMILY, per_task_mean, view_subset
from devkit.families import write_heldout

from submission.engine import EngineSettings, exit_process, start_engine
from submission.judge import Scorer, run_judge
from submission.metrics import evaluate
from submission.pipeline import plan_views, run
from submission.settings import RunSettings
from submission.predictions import read_predictions
from submission.prompts import load_tokenizer, read_model_format
from submission.select import as_grid, get_selector
from submission.submit import build_submission, rank_test_inputs
from submission.tasks import load_challenges, load_solutions

SELECTORS = ("vote", "judge", "found+judge")
# name -> (RunSettings fields, views generated, view counts read)
DECODINGS = {
    "greedy": ({"mode": "greedy"}, 16, (8, 16)),
    "sample 4 (T=0.8)": ({"mode": "sample", "samples": 4, "temperature": 0.8}, 8, (8,)),
    "beam 4": ({"mode": "beam", "beam_width": 4}, 8, (8,)),
    "dfs 0.2": ({"mode": "dfs", "min_prob": 0.2}, 16, (8, 16)),
    "dfs 0.1": ({"mode": "dfs", "min_prob": 0.1}, 16, (8, 16)),
    # --restrict-vocabulary: only the answer format's tokens
    "greedy restricted": ({"mode": "greedy", "restrict_vocabulary": True}, 16, (8, 16)),
    "dfs 0.2 restricted": ({"mode": "dfs", "min_prob": 0.2, "restrict_vocabulary": True}, 16, (8, 16)),
}


def measure(name, slug, challenges_path, solutions_path, engine, tokenizer, model, decodings, out, log, judged=True):
    challenges = load_challenges(challenges_path)
    solutions, _ = load_solutions(solutions_path)
    fmt, _ = read_model_format(model)
    defaults = RunSettings().format
    base = {"encoder": fmt.get("encoder", defaults.encoder), "template": fmt.get("template", defaults.template)}
    judge_settings = RunSettings.of(**base)
    cache = out / slug / "judge_scores.jsonl"
    rows = []
    for decoding in decodings:
        fields, views, reads = DECODINGS[decoding]
        settings = RunSettings.of(augmentations=views, adaptive=False, time_budget=None, **base, **fields)
        run_dir = out / slug / decoding.replace(" ", "_").replace("(", "").replace(")", "").replace("=", "")
        log(f"{name}: {decoding}, {views} views")
        forget_cached_prompts(engine)  # each decoding prefills its prompts as a real run would: from cold
        record = run(challenges, engine, tokenizer, run_dir, settings, {"model": str(model)}, log=lambda _: None)
        predictions = list(read_predictions(run_dir / "predictions.jsonl"))
        plans = plan_views(challenges.tasks, settings)
        speed = run_dir / "speed.json"  # a resumed run generates little: keep the first run's measured speed
        if record["prompts_sent"] >= len(plans) * views // 2:
            speed.write_text(json.dumps({"seconds_per_view": record["stage_seconds"].get("generate", 0.0)
                                         / max(record["prompts_sent"], 1)}))
        per_view = json.loads(speed.read_text())["seconds_per_view"]
        for k in reads:
            subset = view_subset(predictions, plans, k)
            judge = run_judge(challenges, subset, judge_settings, cache, Scorer(engine, tokenizer), model=str(model),
                              log=lambda _: None) if judged else None
            metrics = evaluate(solutions, build_submission(challenges, subset, get_selector("vote")), subset)["overall"]
            price_file = out / slug / "judge_speed.json"  # the price of a score, kept for rows the cache serves
            if judge and judge.computed:
                price_file.write_text(json.dumps({"seconds_per_score": judge.engine_seconds / judge.computed}))
            price = json.loads(price_file.read_text())["seconds_per_score"] if price_file.exists() else None
            row = {"set": name, "decoding": decoding, "views": k,
                   "candidates_per_view": round(len(subset) / (k * len(plans)), 2),
                   "parsed": round(sum(p.grid is not None for p in subset) / max(len(subset), 1), 3),
                   "pass_n": metrics["pass_n"], "generation_seconds": round(per_view * k * len(plans), 1),
                   "judge_scores": judge.needed if judge else None,
                   "judge_seconds": round(price * judge.needed, 1) if judge and price else None}
            for method in SELECTORS if judge else ("vote",):
                selector = get_selector(method, judge.scores if judge else None)
                ranking = rank_test_inputs(challenges, subset, selector)
                top2 = {}
                for key in plans:
                    truth = as_grid(solutions[key[0]][key[1]].tolist())
                    top2[key] = truth in ranking.get(key, [])[:2]
                row[f"{method}_top2"] = per_task_mean(top2)
            if record.get("dfs"):
                row["dfs"] = record["dfs"]
            rows.append(row)
            log(f"  {k} views: {row['candidates_per_view']} candidates/view, pass_n {row['pass_n']:.3f}, "
                f"top-2 vote {row['vote_top2']:.3f} judge {_figure(row.get('judge_top2'))} "
                f"found+judge {_figure(row.get('found+judge_top2'))}, {row['generation_seconds']} s generation")
    return {"set": name, "tasks": len(challenges.tasks), "test_inputs": len(plan_views(challenges.tasks, RunSettings.of(
        augmentations=1, **base))), "rows": rows}


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _judge_seconds(row: dict) -> str:
    """A row's judge seconds; "cached" when its scores came from an earlier row, "-" when not judged."""
    if row.get("judge_scores") is None:
        return "-"
    return str(row["judge_seconds"]) if row["judge_seconds"] else "cached"


def _shown(path: str) -> str:
    """A path as the docs show it: relative to the project when inside it (no machine's paths in docs)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else path


def markdown(result: dict) -> str:
    lines = ["# Decoding per engine-second", "",
             f"`{result['command']}` on {result['machine']['cpu']} ({result['machine']['cores']} cores), "
             f"vLLM {result['engine']['vllm_version']} on {result['engine']['device']} ({result['engine']['dtype']}), "
             f"{result['seconds']:.0f} s in all. Model: `{_shown(result['model'])}`. Judge: top-4 candidates under 8 views. "
             "Engine seconds = generation + judge (for the judge selectors). Figures are written by the command; "
             "what they mean is in docs/benchmarks.md.", ""]
    for s in result["sets"]:
        lines += [f"## {s['set']} ({s['tasks']} tasks, {s['test_inputs']} test inputs)", "",
                  "| decoding | views | candidates/view | parsed | pass_n | top-2 vote | top-2 judge | top-2 found+judge "
                  "| generation s | judge s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in s["rows"]:
            lines.append(f"| {r['decoding']} | {r['views']} | {r['candidates_per_view']} | {r.get('parsed', '-')} | "
                         f"{r['pass_n']:.3f} | "
                         f"{r['vote_top2']:.3f} | {_figure(r.get('judge_top2'))} | {_figure(r.get('found+judge_top2'))} | "
                         f"{r['generation_seconds']} | {_judge_seconds(r)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "arc-demo")
    parser.add_argument("--decodings", default=",".join(DECODINGS),
                        help=f"which decodings, comma-separated, of: {', '.join(DECODINGS)} (default: all)")
    parser.add_argument("--heldout-decodings", default="greedy,sample 4 (T=0.8),dfs 0.2,dfs 0.1",
                        help="decodings on the held-out set (default: all but beam search, which vLLM runs one "
                             "engine call per token: about 10x greedy on this CPU)")
    parser.add_argument("--sets", default="in-family,heldout")
    parser.add_argument("--judge-sets", default="in-family,heldout",
                        help="the sets whose candidates the judge scores (its top-4 under 8 views cost more than "
                             "greedy generation on this CPU); the others get the vote only (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=100, help="held-out generated tasks (default: %(default)s)")
    parser.add_argument("--heldout-max-side", type=int, default=12)
    parser.add_argument("--heldout-seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "decoding")
    parser.add_argument("--docs", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--cpu-kv-cache-gib", type=float, default=2.0)
    args = parser.parse_args(argv)
    decodings = [d.strip() for d in args.decodings.split(",")]
    heldout_decodings = [d.strip() for d in args.heldout_decodings.split(",") if d.strip() in decodings]
    unknown = [d for d in decodings + [d.strip() for d in args.heldout_decodings.split(",")] if d not in DECODINGS]
    if unknown:
        parser.error(f"unknown decoding(s) {unknown}; choose from {list(DECODINGS)}")

    started = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    log = lambda message: print(message, flush=True)  # noqa: E731
    info = machine()
    engine = start_engine(EngineSettings(str(args.model), max_model_len=8192, cpu_kv_cache_gib=args.cpu_kv_cache_gib),
                          log=log)
    tokenizer = load_tokenizer(str(args.model), log=log)
    sets = []
    try:
        for wanted in args.sets.split(","):
            if wanted == "in-family":
                sets.append(measure("real ARC-AGI-1 tasks in the families", "in-family", IN_FAMILY / "challenges.json",
                                    IN_FAMILY / "solutions.json", engine, tokenizer, args.model, decodings, args.out,
                                    log, "in-family" in args.judge_sets.split(",")))
            elif wanted == "heldout":
                ch, sol = write_heldout(args.out / "heldout-tasks", args.heldout, args.heldout_seed,
                                        args.heldout_max_side)
                sets.append(measure(f"held-out generated ({args.heldout}, seed {args.heldout_seed})", "heldout", ch,
                                    sol, engine, tokenizer, args.model, heldout_decodings, args.out, log,
                                    "heldout" in args.judge_sets.split(",")))
            else:
                parser.error(f"unknown set {wanted!r}; choose from in-family, heldout")
        engine_info = engine.describe()
    finally:
        engine.close()
    write_scorecard("decoding.py", argv, args, {"model": str(args.model), "machine": info, "engine": engine_info,
                                                 "seconds": round(time.time() - started, 1), "sets": sets},
                    "decoding.json", markdown)
    return 0


if __name__ == "__main__":
    exit_process(main)
