#!/usr/bin/env python3
"""Extras: what beam search and the model as judge cost, next to plain generation.

1. Beam search against sampling the same number of candidates: the pipeline's prompts (N views
   per test input, one max_tokens for all), each given W candidates by ``engine.generate``
   (n=W, temperature 1) and by ``engine.beam_search`` (width W); greedy (one candidate) as the
   reference. Interleaved repeats, each from an empty prefix cache.
2. The model as judge (judge.run_judge): K candidate grids per test input, each scored under M
   augmented views in one batched engine call, from an empty score cache; seconds per
   (candidate, view) score, per candidate (all M views) and per view (all candidates), next to
   the greedy generation of the same test inputs. The candidates' content does not change the
   cost, only their size: they are the true output (when the solutions are given) and the test
   input under the dihedral transforms, so each has a real ARC grid's size.

    .venv/bin/python bench/extras.py
    .venv/bin/python bench/extras.py --challenges PATH/arc-agi_evaluation_challenges.json --tasks 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from devkit.bench_tools import (Timer, solutions_path, tokens_out, add_common_arguments, add_engine_arguments, finish,
                    forget_cached_prompts, load_tasks, machine, rotations, start)

from submission.augment import Augmentation
from submission.engine import GenerationRequest, exit_process
from submission.judge import Scorer, needed_keys, run_judge, score_request
from submission.pipeline import plan_work, prepare_requests
from submission.settings import RunSettings
from submission.predictions import Prediction
from submission.prompts import load_tokenizer
from submission.tasks import load_solutions


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "extras.json")
    add_engine_arguments(p)
    p.add_argument("--solutions", type=Path, default=None,
                   help="solutions: the true output becomes one judged candidate (default: the sample's when "
                        "--challenges is the sample, else none)")
    p.add_argument("--views", type=int, default=8, help="generation views per test input (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=64,
                   help="max_tokens of every generation request (default: %(default)s)")
    p.add_argument("--beam-width", type=int, default=4,
                   help="W: beams, and samples, per prompt (default: %(default)s)")
    p.add_argument("--judge-views", type=int, default=8, help="M: views each candidate is scored under "
                                                              "(default: %(default)s)")
    p.add_argument("--judge-top-k", type=int, default=4, help="K: candidates judged per test input "
                                                              "(default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs of each alternative (default: %(default)s)")
    p.add_argument("--skip-beam", action="store_true", help="leave out the beam search part")
    p.add_argument("--skip-judge", action="store_true", help="leave out the judge part")
    return p


def beam_part(args, engine, tokenizer, challenges) -> dict:
    settings = RunSettings.of(augmentations=args.views, samples=args.beam_width, temperature=1.0, mode="sample",
                           max_tokens=args.max_tokens, time_budget=None)
    ready, _ = prepare_requests(challenges.tasks, plan_work(challenges.tasks, settings), tokenizer,
                                engine.max_model_len, settings, log=lambda _: None)
    sampled = [replace(r, max_tokens=args.max_tokens) for _, r in ready]
    greedy = [replace(r, n=1, temperature=0.0) for r in sampled]
    ways = {
        "greedy_1_candidate": lambda: engine.generate(greedy),
        f"sampling_{args.beam_width}_candidates": lambda: engine.generate(sampled),
        f"beam_search_{args.beam_width}_candidates": lambda: engine.beam_search(sampled, args.beam_width),
    }
    print(f"beam part: {len(sampled)} prompts, {args.beam_width} candidates each, max_tokens {args.max_tokens}")
    engine.generate(greedy)  # warm-up
    timer, tokens = Timer(), {}
    for r, order in enumerate(rotations(list(ways), args.repeats), 1):
        for name in order:
            forget_cached_prompts(engine)
            results = timer.time(name, ways[name])
            tokens.setdefault(name, []).append(tokens_out(results))
            print(f"repeat {r}: {name:>28}: {timer.runs[name][-1]:8.2f} s, {tokens[name][-1]} tokens out")
    sampling, beam = timer.median(f"sampling_{args.beam_width}_candidates"), \
        timer.median(f"beam_search_{args.beam_width}_candidates")
    print(f"beam search takes {beam / sampling:.1f}x the time of sampling as many candidates "
          f"({beam:.2f} s against {sampling:.2f} s; greedy, one candidate: "
          f"{timer.median('greedy_1_candidate'):.2f} s)")
    return {
        "prompts": len(sampled), "candidates_per_prompt": args.beam_width, "max_tokens": args.max_tokens,
        "seconds": timer.summary(), "output_tokens": tokens,
        "beam_over_sampling": round(beam / sampling, 2),
        "beam_over_sampling_fastest_runs": round(timer.best(f"beam_search_{args.beam_width}_candidates")
                                                 / timer.best(f"sampling_{args.beam_width}_candidates"), 2),
        "beam_over_greedy": round(beam / timer.median("greedy_1_candidate"), 2),
        "sampling_over_greedy": round(sampling / timer.median("greedy_1_candidate"), 2),
    }


def candidate_predictions(challenges, solutions, top_k: int) -> list[Prediction]:
    """Up to K distinct real-sized grids per test input, as parsed predictions (one vote each)."""
    predictions = []
    for task in challenges.tasks.values():
        for i, test_input in enumerate(task.test_inputs):
            grids = []
            truth = solutions.get(task.id, ())
            if i < len(truth):
                grids.append(np.asarray(truth[i]).tolist())
            for d in range(8):
                grid = Augmentation(d).apply_grid(test_input).tolist()
                if grid not in grids:
                    grids.append(grid)
            for s, grid in enumerate(grids[:top_k]):
                predictions.append(Prediction(task.id, i, "d0", s, "", grid, None, -1.0, 1, "stop", "greedy"))
    return predictions


def judge_part(args, engine, tokenizer, challenges, solutions) -> dict:
    judge_settings = RunSettings.of(judge_views=args.judge_views, judge_top_k=args.judge_top_k)
    predictions = candidate_predictions(challenges, solutions, args.judge_top_k)
    generation = RunSettings.of(augmentations=args.views, max_tokens=args.max_tokens, time_budget=None)
    ready, _ = prepare_requests(challenges.tasks, plan_work(challenges.tasks, generation), tokenizer,
                                engine.max_model_len, generation, log=lambda _: None)
    greedy = [replace(r, max_tokens=args.max_tokens) for _, r in ready]
    # The judge's prompts (view prompt + candidate) as plain one-token generations: their prefill
    # without the prompt log-probs, to show which part of the judge's time is which.
    scored = [score_request(tokenizer, challenges.tasks[k.task_id], k, judge_settings, engine.max_model_len)
              for k in needed_keys(challenges, predictions, judge_settings)]
    prefills = [GenerationRequest(r.prompt_token_ids + r.continuation_token_ids, 1) for r in scored]
    results = []

    def judge():
        with tempfile.TemporaryDirectory() as folder:  # an empty score cache each time
            result = run_judge(challenges, predictions, judge_settings, Path(folder) / "judge_scores.jsonl",
                               Scorer(engine, tokenizer), str(args.model), log=lambda _: None)
        results.append(result)

    ways = {"judge": judge, "judge_prompts_prefill_only": lambda: engine.generate(prefills),
            f"greedy_generation_{args.views}_views": lambda: engine.generate(greedy)}
    test_inputs = sum(len(t.test_inputs) for t in challenges.tasks.values())
    print(f"judge part: {len(predictions)} candidates ({len(predictions) / max(1, test_inputs):.1f} "
          f"per test input) x {args.judge_views} views; reference: greedy generation of {len(greedy)} prompts")
    timer = Timer()
    for r, order in enumerate(rotations(list(ways), args.repeats), 1):
        for name in order:
            forget_cached_prompts(engine)
            timer.time(name, ways[name])
            print(f"repeat {r}: {name:>28}: {timer.runs[name][-1]:8.2f} s")
    scores = results[0].computed
    engine_s = statistics.median(r.engine_seconds for r in results)
    total_s = timer.median("judge")
    generation_s = timer.median(f"greedy_generation_{args.views}_views")
    candidates = len(predictions)
    prefill_s = timer.median("judge_prompts_prefill_only")
    print(f"judge: {scores} (candidate, view) scores in {total_s:.2f} s ({engine_s:.2f} s in the engine): "
          f"{1e3 * total_s / scores:.1f} ms per score, {1e3 * total_s / candidates:.1f} ms per candidate "
          f"({args.judge_views} views), {total_s / args.judge_views:.2f} s per view (all candidates); "
          f"{total_s / generation_s:.2f}x the greedy generation of the {args.views} views; the same prompts "
          f"prefilled without log-probs: {prefill_s:.2f} s")
    return {
        "candidates": candidates, "views": args.judge_views, "top_k": args.judge_top_k, "scores": scores,
        "unscorable": results[0].unscorable,
        "seconds": timer.summary(),
        "judge_engine_seconds_median": round(engine_s, 4),
        "ms_per_score": round(1e3 * total_s / scores, 2),
        "ms_per_candidate": round(1e3 * total_s / candidates, 2),
        "seconds_per_view": round(total_s / args.judge_views, 4),
        "judge_over_greedy_generation": round(total_s / generation_s, 3),
        "judge_over_prefill_only": round(total_s / prefill_s, 3),
        "score_prompt_tokens_mean": round(sum(len(r.prompt_token_ids) + len(r.continuation_token_ids)
                                              for r in scored) / max(1, len(scored))),
        "generation_prompts": len(greedy),
    }


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    figures = {"benchmark": "extras", "machine": machine()}
    challenges = load_tasks(args.challenges, args.tasks)
    solutions_file = solutions_path(args)
    solutions = load_solutions(solutions_file)[0] if solutions_file else {}
    tokenizer = load_tokenizer(str(args.model))
    engine = start(args)
    try:
        figures["engine"] = engine.describe()
        figures["workload"] = {"challenges": str(args.challenges), "tasks": len(challenges.tasks),
                               "test_inputs": sum(len(t.test_inputs) for t in challenges.tasks.values()),
                               "repeats": args.repeats}
        if not args.skip_beam:
            figures["beam_search"] = beam_part(args, engine, tokenizer, challenges)
        if not args.skip_judge:
            figures["judge"] = judge_part(args, engine, tokenizer, challenges, solutions)
    finally:
        engine.close()
    finish(figures, args.out, started)
    return 0


if __name__ == "__main__":
    exit_process(main)
