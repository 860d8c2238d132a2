#!/usr/bin/env python3
"""Batching: the same prompts generated one prompt per call, one task per call, and all in one call.

The prompts are the pipeline's own (plan_work + prepare_requests: real ARC tasks, N views per
test input), every request capped at the same max_tokens, sent through the project's engine
(VllmEngine.generate). The three ways alternate within each repeat, in rotated order, after an
untimed warm-up, each from an empty prefix cache; the figures are median wall times and their
ratios.

    .venv/bin/python bench/batching.py                     # the bundled sample: 10 test inputs x 8 views
    .venv/bin/python bench/batching.py --challenges PATH/arc-agi_evaluation_challenges.json --tasks 20
                                                           # the 20 smallest evaluation tasks: 168 prompts
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from devkit.bench_tools import (Timer, tokens_out, add_common_arguments, add_engine_arguments, finish, forget_cached_prompts, load_tasks,
                    machine, rotations, start)

from submission.engine import exit_process
from submission.pipeline import plan_work, prepare_requests
from submission.settings import RunSettings
from submission.prompts import load_tokenizer

WAYS = ("one_prompt_per_call", "one_task_per_call", "all_in_one_call")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "batching.json")
    add_engine_arguments(p)
    p.add_argument("--views", type=int, default=8, help="augmented views per test input (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=64,
                   help="max_tokens of every request, the same for all (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2,
                   help="timed runs of each way, interleaved (default: %(default)s)")
    return p


def generate_per_prompt(engine, requests):
    return [out for r in requests for out in engine.generate([r])]


def generate_per_task(engine, requests):
    results = [None] * len(requests)
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        by_task.setdefault(r.group, []).append(i)
    for members in by_task.values():
        for i, out in zip(members, engine.generate([requests[i] for i in members])):
            results[i] = out
    return results


def generate_all(engine, requests):
    return engine.generate(requests)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    figures = {"benchmark": "batching", "machine": machine()}
    challenges = load_tasks(args.challenges, args.tasks)
    tokenizer = load_tokenizer(str(args.model))
    engine = start(args)
    try:
        settings = RunSettings.of(augmentations=args.views, max_tokens=args.max_tokens, time_budget=None)
        ready, misses = prepare_requests(challenges.tasks, plan_work(challenges.tasks, settings), tokenizer,
                                         engine.max_model_len, settings)
        # one max_tokens for every prompt, so each way does the same work
        requests = [replace(request, max_tokens=args.max_tokens) for _, request in ready]
        prompt_tokens = sum(len(r.prompt_token_ids) for r in requests)
        print(f"{len(challenges.tasks)} tasks, {sum(len(t.test_inputs) for t in challenges.tasks.values())} test "
              f"inputs x {args.views} views = {len(requests)} prompts ({len(misses)} unanswerable), "
              f"{prompt_tokens} prompt tokens, max_tokens {args.max_tokens}")
        ways = {"one_prompt_per_call": generate_per_prompt, "one_task_per_call": generate_per_task,
                "all_in_one_call": generate_all}
        generate_all(engine, requests)  # warm-up: first-call costs are not batching
        timer, tokens = Timer(), {}
        for r, order in enumerate(rotations(list(WAYS), args.repeats), 1):
            for name in order:
                forget_cached_prompts(engine)
                results = timer.time(name, ways[name], engine, requests)
                tokens.setdefault(name, []).append(tokens_out(results))
                print(f"repeat {r}: {name:>20}: {timer.runs[name][-1]:8.2f} s, {tokens[name][-1]} tokens out")
        per_prompt, all_in_one = timer.median("one_prompt_per_call"), timer.median("all_in_one_call")
        figures.update({
            "engine": engine.describe(),
            "workload": {
                "challenges": str(args.challenges), "tasks": len(challenges.tasks),
                "test_inputs": sum(len(t.test_inputs) for t in challenges.tasks.values()),
                "views": args.views, "prompts": len(requests), "unanswerable": len(misses),
                "prompt_tokens": prompt_tokens, "max_tokens": args.max_tokens, "repeats": args.repeats,
            },
            "seconds": timer.summary(),
            "output_tokens": tokens,
            "output_tokens_per_s": {name: round(tokens[name][0] / timer.median(name), 1) for name in WAYS},
            "speedup_vs_one_prompt_per_call": {
                name: round(per_prompt / timer.median(name), 2) for name in WAYS
            },
            "speedup_vs_one_prompt_per_call_fastest_runs": {
                name: round(timer.best("one_prompt_per_call") / timer.best(name), 2) for name in WAYS
            },
        })
        print(f"\nmedian of {args.repeats}: one prompt per call {per_prompt:.2f} s, one task per call "
              f"{timer.median('one_task_per_call'):.2f} s, all in one call {all_in_one:.2f} s")
        print(f"all in one call is {per_prompt / all_in_one:.1f}x faster than one prompt per call, "
              f"{timer.median('one_task_per_call') / all_in_one:.1f}x faster than one task per call")
    finally:
        engine.close()
    finish(figures, args.out, started)
    return 0


if __name__ == "__main__":
    exit_process(main)
