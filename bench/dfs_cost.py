#!/usr/bin/env python3
"""What depth-first enumeration costs next to greedy decoding, and what its two savings are worth:
branches continued in pieces (stopped once below min_prob) and vLLM's prefix cache.

On the demo model and the real in-family ARC-AGI-1 tasks, 8 views each: greedy decoding, then
dfs at --min-prob with branches sent whole and in pieces, on one engine; then dfs in pieces on a
second engine with prefix caching off. Each dfs line: engine seconds of the greedy pass and of the
branch rounds, branches sent, tokens generated, candidates found.

    python bench/dfs_cost.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from devkit.bench_tools import forget_cached_prompts, machine

from submission.dfs import DfsSettings, DfsStats, enumerate_completions, model_ending
from submission.encoders import get_encoder, stop_strings
from submission.engine import EngineSettings, VllmEngine, exit_process
from submission.pipeline import plan_work, prepare_requests
from submission.settings import RunSettings
from submission.prompts import load_tokenizer, read_model_format
from submission.tasks import load_challenges


def enumerate_once(engine, requests, ending, settings: DfsSettings, label: str, log) -> dict:
    forget_cached_prompts(engine)  # the greedy pass prefills from cold, as in a real run
    stats = DfsStats()
    started = time.perf_counter()
    enumerate_completions(engine, requests, ending, settings, stats=stats)
    row = {"label": label, "seconds": round(time.perf_counter() - started, 1),
           "greedy_pass_seconds": stats.per_round[0]["seconds"],
           "branch_seconds": round(sum(r["seconds"] for r in stats.per_round[1:]), 1), **stats.as_dict()}
    log(json.dumps(row))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "arc-demo")
    parser.add_argument("--challenges", type=Path, default=ROOT / "data" / "arc-agi-1-in-family" / "challenges.json")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--min-prob", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "dfs_cost.json")
    args = parser.parse_args(argv)
    log = lambda message: print(message, flush=True)  # noqa: E731
    fmt, _ = read_model_format(args.model)
    settings = RunSettings.of(augmentations=args.views, encoder=fmt["encoder"], template=fmt["template"])
    tokenizer = load_tokenizer(str(args.model), log=log)
    tasks = load_challenges(args.challenges).tasks
    requests = [r for _, r in prepare_requests(tasks, plan_work(tasks, settings), tokenizer, 8192, settings, log)[0]]
    ending = model_ending(tokenizer, str(args.model), tuple(stop_strings(get_encoder(settings.format.encoder))))
    log(f"{len(requests)} prompts of {args.challenges}")
    rows = []
    for caching in (True, False):
        engine = VllmEngine(EngineSettings(str(args.model), max_model_len=8192, cpu_kv_cache_gib=2,
                                           enable_prefix_caching=caching), log=log)
        try:
            engine.generate(requests[:1])  # warm-up: the first call pays one-off costs
            if caching:
                forget_cached_prompts(engine)
                started = time.perf_counter()
                outputs = engine.generate(requests)
                rows.append({"label": "greedy", "seconds": round(time.perf_counter() - started, 1),
                             "tokens": sum(c[0].token_count for c in outputs)})
                log(json.dumps(rows[-1]))
                rows.append(enumerate_once(engine, requests, ending, DfsSettings(args.min_prob, piece_tokens=0),
                                           "dfs, branches whole", log))
            rows.append(enumerate_once(engine, requests, ending, DfsSettings(args.min_prob),
                                       "dfs, branches in pieces" + ("" if caching else ", prefix cache off"), log))
        finally:
            engine.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python bench/dfs_cost.py " + " ".join(sys.argv[1:] if argv is None
                                                                                      else argv),
                                    "machine": machine(), "prompts": len(requests), "rows": rows}, indent=1))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    exit_process(main)
