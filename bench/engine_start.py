#!/usr/bin/env python3
"""Engine start-up: vLLM's engine core in a process of its own (vLLM's default, what runs use)
against the core in the calling process (``EngineSettings(in_process=True)``, what the tests'
session engine uses).

Each start is a fresh Python process (the imports are part of a start, and only one in-process
engine may run per process), the two ways alternating; each process then times two calls of 64
prompts x 64 sampled tokens (the first includes warm-up). Medians, and the ratio of the two starts.

    .venv/bin/python bench/engine_start.py                 # the tiny model (make bench builds it)
    .venv/bin/python bench/engine_start.py --model DIR --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from devkit.bench_tools import ROOT, machine

WAYS = {"its own process": False, "this process": True}


def one_start(model: str, in_process: bool, cpu_kv_cache_gib: float) -> dict:
    """In a child process: import, start, two generate calls; the seconds of each."""
    t0 = time.perf_counter()
    from submission.engine import EngineSettings, GenerationRequest, VllmEngine

    engine = VllmEngine(EngineSettings(model, cpu_kv_cache_gib=cpu_kv_cache_gib, enforce_eager=True,
                                       in_process=in_process), log=lambda _: None)
    started = time.perf_counter() - t0
    requests = [GenerationRequest(tuple(range(10, 110 + i)), 64, temperature=1.0, seed=i) for i in range(64)]
    calls = []
    for _ in range(2):
        t = time.perf_counter()
        engine.generate(requests)
        calls.append(time.perf_counter() - t)
    core = engine.core_process()
    engine.close()
    return {"start_s": started, "first_call_s": calls[0], "second_call_s": calls[1], "core": core}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models" / "tiny-qwen2"))
    p.add_argument("--repeats", type=int, default=2, help="starts of each way (default: %(default)s)")
    p.add_argument("--cpu-kv-cache-gib", type=float, default=1.0)
    p.add_argument("--child", choices=["own", "in"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(one_start(args.model, args.child == "in", args.cpu_kv_cache_gib)))
        return 0
    runs: dict[str, list[dict]] = {way: [] for way in WAYS}
    for repeat in range(args.repeats):
        for way, in_process in WAYS.items():
            done = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", "in" if in_process else "own",
                                   "--cpu-kv-cache-gib", str(args.cpu_kv_cache_gib)],
                                  capture_output=True, text=True, timeout=900, cwd=ROOT)
            if done.returncode != 0:
                sys.exit(f"error: the {way} start failed:\n{done.stderr[-2000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            runs[way].append(result)
            print(f"start {repeat + 1}, core in {way} ({result['core']}): {result['start_s']:.1f}s to start, "
                  f"{result['first_call_s']:.2f}s and {result['second_call_s']:.2f}s for 64 prompts x 64 tokens",
                  flush=True)
    medians = {way: {k: statistics.median(r[k] for r in results) for k in ("start_s", "first_call_s", "second_call_s")}
               for way, results in runs.items()}
    own, here = medians["its own process"], medians["this process"]
    print(f"\nmedians of {args.repeats}: start {own['start_s']:.1f}s (its own process) against {here['start_s']:.1f}s "
          f"(this process), {own['start_s'] / here['start_s']:.2f}x; second call {own['second_call_s']:.2f}s "
          f"against {here['second_call_s']:.2f}s")
    print(json.dumps({"machine": machine(), "medians": medians}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
