#!/usr/bin/env python3
"""Overhead: what the pipeline adds on top of vLLM.

1. Engine part: the full ``pipeline.run`` (prompts, generation, parsing, predictions.jsonl,
   selection, submission.json, metrics) against a bare ``LLM.generate`` of exactly the same
   prompts and sampling parameters (``VllmEngine.bare_generate``), on the same engine, in
   alternating order, each from an empty prefix cache; medians and their ratio.
2. CPU part: the pipeline's own work per prediction (planning, rendering + tokenizing, parsing +
   un-augmenting, recording, selecting) with an instant fake engine, over a whole challenges
   file (by default the bundled ARC-AGI-2 evaluation set: 167 test inputs x 8 views), in
   microseconds per prediction, with the model's tokenizer (the tiny model's is byte-level, one
   token per byte) and Qwen2.5's real tokenizer, rebuilt offline (devkit/qwen_vocab.py).

    .venv/bin/python bench/overhead.py
    .venv/bin/python bench/overhead.py --cost-challenges PATH/arc-agi_evaluation_challenges.json
    .venv/bin/python bench/overhead.py --skip-engine --cost-challenges PATH/...   # CPU part only, no vLLM
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from devkit.bench_tools import (ROOT, SAMPLE_CHALLENGES, EVAL_HINT, Timer, add_common_arguments, add_engine_arguments, finish,
                    forget_cached_prompts, load_tasks, machine, rotations, solutions_path, start, tokens_out)

from submission.encoders import get_encoder
from submission.engine import Completion, exit_process
from submission.judge import candidate_text
from submission.pipeline import generate_predictions, plan_work, prepare_requests, run
from submission.settings import RunSettings
from submission.predictions import append_predictions, read_predictions
from submission.prompt_tokens import PromptTokenizer
from submission.prompts import get_template, load_tokenizer, render
from submission.select import get_selector
from submission.submit import build_submission, write_json_atomic

DEFAULT_EVAL = ROOT / "data" / "arc-agi-2-evaluation" / "challenges.json"  # the 2026 competition's stand-in
STAGES = ("plan", "render_and_tokenize", "generate_fake", "parse_and_unaugment", "record", "select")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p, "overhead.json")
    add_engine_arguments(p)
    p.add_argument("--solutions", type=Path, default=None,
                   help="solutions for the engine part's run (metrics are part of a run); default: the "
                        "sample's when --challenges is the sample, else none")
    p.add_argument("--views", type=int, default=8, help="augmented views per test input (default: %(default)s)")
    p.add_argument("--max-tokens", type=int, default=64,
                   help="engine part: cap on every prompt's answer tokens (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs of each alternative (default: %(default)s)")
    p.add_argument("--cost-challenges", type=Path, default=DEFAULT_EVAL,
                   help=f"CPU part: the challenges file, {EVAL_HINT}, all of its tasks (--tasks is for the "
                        "engine part); the bundled sample when the file is missing (default: %(default)s)")
    p.add_argument("--cost-tokenizers", default="model,qwen2.5",
                   help="CPU part: tokenizers to measure, comma-separated: model (the --model's; the tiny one's is "
                        "one token per byte), qwen2.5 (Qwen2.5's real tokenizer, built offline) (default: %(default)s)")
    p.add_argument("--skip-engine", action="store_true", help="only the CPU part (no vLLM)")
    p.add_argument("--skip-cpu", action="store_true", help="only the engine part")
    return p


class InstantEngine:
    """An Engine double that answers at once with a well-formed grid: each task's first train
    output, so answers have that task's real size. It keeps the seconds spent inside it."""

    def __init__(self, challenges, encoder_name: str, max_model_len: int):
        encoder = get_encoder(encoder_name)
        self.max_model_len = max_model_len
        self.answers = {
            task_id: candidate_text(encoder, task.train[0].output).removesuffix("```")
            for task_id, task in challenges.tasks.items()
        }
        self.wall = self.cpu = 0.0

    def generate(self, requests, deadline=None):
        wall, cpu = time.perf_counter(), time.process_time()
        out = [[Completion(self.answers[r.group], len(self.answers[r.group]), -1.0, "stop")] * r.n for r in requests]
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        return out

    def describe(self):
        return {"engine": "instant"}


def quiet(_message: str) -> None:
    pass


# -- engine part -----------------------------------------------------------------------------

def engine_overhead(args, engine, tokenizer) -> dict:
    challenges = load_tasks(args.challenges, args.tasks)
    solutions = solutions_path(args)
    settings = RunSettings.of(augmentations=args.views, max_tokens=args.max_tokens, time_budget=None)
    # exactly the requests run() builds: same plan, same prompts, same per-prompt seeds and budgets
    ready, misses = prepare_requests(challenges.tasks, plan_work(challenges.tasks, settings), tokenizer,
                                     engine.max_model_len, settings, log=quiet)
    requests = [request for _, request in ready]
    print(f"engine part: {len(challenges.tasks)} tasks, {len(requests)} prompts "
          f"({sum(len(r.prompt_token_ids) for r in requests)} prompt tokens), answers capped at "
          f"{args.max_tokens} tokens")

    records, tokens = [], {}

    def bare(_folder):
        out = engine.bare_generate(requests)
        tokens.setdefault("bare_generate", []).append(tokens_out(out))

    def pipeline(folder):
        records.append(run(challenges, engine, tokenizer, folder, settings, {"bench": "overhead"}, solutions,
                           log=quiet))

    ways = {"bare_generate": bare, "pipeline_run": pipeline}
    bare(None)  # warm-up, untimed
    tokens.clear()
    timer = Timer()
    for r, order in enumerate(rotations(list(ways), args.repeats), 1):
        for name in order:
            forget_cached_prompts(engine)
            with tempfile.TemporaryDirectory() as folder:
                timer.time(name, ways[name], Path(folder))
                if name == "pipeline_run":  # counted after the clock stopped
                    tokens.setdefault(name, []).append(
                        sum(p.token_count for p in read_predictions(Path(folder) / "predictions.jsonl")))
            print(f"repeat {r}: {name:>14}: {timer.runs[name][-1]:7.2f} s, {tokens[name][-1]} tokens out")
    bare_s = timer.median("bare_generate")
    ratio = timer.median("pipeline_run") / bare_s
    best_ratio = timer.best("pipeline_run") / timer.best("bare_generate")
    paired = timer.paired_ratio("pipeline_run", "bare_generate")
    stage_keys = sorted({k for rec in records for k in rec["stage_seconds"]})
    stages = {k: statistics.median(rec["stage_seconds"].get(k, 0.0) for rec in records) for k in stage_keys}
    # The stages split the pipeline's time into the engine call and its own work around it, which
    # holds better than the difference of two noisy totals.
    own = sum(v for k, v in stages.items() if k != "generate")
    print(f"median of {args.repeats}: bare generate {bare_s:.2f} s, full pipeline "
          f"{timer.median('pipeline_run'):.2f} s: the pipeline takes {100 * (ratio - 1):+.1f}% "
          f"(repeat by repeat: {100 * (paired - 1):+.1f}%, fastest runs: {100 * (best_ratio - 1):+.1f}%); inside it, the engine call {stages.get('generate', 0):.2f} s "
          f"and its own work {own:.3f} s ({100 * own / bare_s:.1f}% of the bare time; prompts "
          f"{stages.get('prompts', 0):.3f} s)")
    return {
        "workload": {"challenges": str(args.challenges), "tasks": len(challenges.tasks), "prompts": len(requests),
                     "unanswerable": len(misses), "views": args.views, "max_tokens_cap": args.max_tokens,
                     "prompt_tokens": sum(len(r.prompt_token_ids) for r in requests),
                     "solutions": str(solutions) if solutions else None, "repeats": args.repeats},
        "seconds": timer.summary(),
        "output_tokens": tokens,
        "pipeline_over_bare": round(ratio, 4),
        "pipeline_extra_percent": round(100 * (ratio - 1), 2),
        "pipeline_over_bare_fastest_runs": round(best_ratio, 4),
        "pipeline_over_bare_paired_median": round(paired, 4),
        "pipeline_stage_seconds_median": {k: round(v, 4) for k, v in stages.items()},
        "engine_call_over_bare": round(stages.get("generate", 0.0) / bare_s, 4),
        "pipeline_own_work_seconds": round(own, 4),
        "pipeline_own_work_percent_of_bare": round(100 * own / bare_s, 2),
        "pipeline_own_work_ms_per_prompt": round(1e3 * own / len(requests), 3),
        # run() time outside its named stages (run.json and the first submission.json, planning rounds)
        "pipeline_outside_stages_seconds": round(timer.median("pipeline_run") - sum(stages.values()), 4),
    }


# -- CPU part --------------------------------------------------------------------------------

class StageClock:
    """Wall and CPU (process) seconds per stage: the CPU seconds hold better on a busy machine."""

    def __init__(self):
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._mark = (time.perf_counter(), time.process_time())

    def lap(self, stage: str, inner: InstantEngine | None = None) -> None:
        """Everything since the previous lap is ``stage``, less the time spent in ``inner``."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall[stage] = wall - self._mark[0] - (inner.wall if inner else 0.0)
        self.cpu[stage] = cpu - self._mark[1] - (inner.cpu if inner else 0.0)
        self._mark = (wall, cpu)


def fresh(tokenizer) -> PromptTokenizer:
    """What load_tokenizer gives a run for this (Hugging Face) tokenizer: an empty piece cache."""
    return PromptTokenizer(tokenizer)


def cpu_stages(challenges, tokenizer, settings: RunSettings, max_model_len: int, folder: Path) -> dict:
    """Seconds of each stage of one pass, chained the way run() chains them, with an instant engine."""
    tokenizer = fresh(tokenizer)
    engine = InstantEngine(challenges, settings.format.encoder, max_model_len)
    dropped = []
    clock = StageClock()
    items = plan_work(challenges.tasks, settings)
    clock.lap("plan")
    ready, misses = prepare_requests(challenges.tasks, items, tokenizer, max_model_len, settings,
                                     log=lambda m: dropped.append(m))
    clock.lap("render_and_tokenize")
    predictions, _ = generate_predictions(engine, ready, settings)
    clock.lap("parse_and_unaugment", inner=engine)
    clock.wall["generate_fake"], clock.cpu["generate_fake"] = engine.wall, engine.cpu
    predictions += misses
    append_predictions(folder / "predictions.jsonl", predictions)
    clock.lap("record")
    write_json_atomic(folder / "submission.json",
                      build_submission(challenges, predictions, get_selector(settings.selection.selector)))
    clock.lap("select")
    parsed = sum(p.grid is not None for p in predictions)
    return {"wall": clock.wall, "cpu": clock.cpu, "predictions": len(predictions), "parsed": parsed,
            "unanswerable": len(misses), "prompt_tokens": sum(len(r.prompt_token_ids) for _, r in ready),
            "log_lines": len(dropped)}


def cpu_cost(challenges, tokenizer, max_model_len: int, views: int, repeats: int) -> dict:
    settings = RunSettings.of(augmentations=views, time_budget=None)
    passes = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            passes.append(cpu_stages(challenges, tokenizer, settings, max_model_len, Path(folder)))
    n = passes[0]["predictions"]

    def per_prediction(kind: str) -> dict:
        return {s: round(1e6 * statistics.median(p[kind][s] for p in passes) / n, 1) for s in STAGES}

    wall, cpu = per_prediction("wall"), per_prediction("cpu")
    whole_wall, whole_cpu = [], []
    for _ in range(repeats):  # the same work through run() itself: every file it writes included
        with tempfile.TemporaryDirectory() as folder:
            engine = InstantEngine(challenges, settings.format.encoder, max_model_len)
            run_tokenizer = fresh(tokenizer)
            t, c = time.perf_counter(), time.process_time()
            record = run(challenges, engine, run_tokenizer, Path(folder), settings, {"bench": "cpu"}, log=quiet)
            whole_wall.append(time.perf_counter() - t)
            whole_cpu.append(time.process_time() - c)
            assert record["predictions"] == n, "run() and the stage-by-stage pass disagree"
    return {
        "render_vs_tokenize": render_vs_tokenize(challenges, tokenizer, settings),
        "predictions": n, "parsed": passes[0]["parsed"], "unanswerable": passes[0]["unanswerable"],
        "prompt_tokens_per_prediction": round(passes[0]["prompt_tokens"] / n),
        "prompts_that_dropped_examples": passes[0]["log_lines"],
        "cpu_us_per_prediction": cpu,
        "cpu_us_per_prediction_sum": round(sum(cpu.values()), 1),
        "cpu_us_per_prediction_whole_run": round(1e6 * statistics.median(whole_cpu) / n, 1),
        "wall_us_per_prediction": wall,
        "wall_us_per_prediction_sum": round(sum(wall.values()), 1),
        "wall_us_per_prediction_whole_run": round(1e6 * statistics.median(whole_wall) / n, 1),
    }


def render_vs_tokenize(challenges, tokenizer, settings: RunSettings) -> dict:
    """Where render_and_tokenize goes: every planned prompt (all train examples) rendered, then
    tokenized one by one as build_prompt does, by the pipeline's PromptTokenizer (from an empty
    cache, with its checks; then a second pass, its cache full, as later rounds of a long run
    find it) and by the Hugging Face tokenizer's own encode; the ids must agree."""
    encoder, template = get_encoder(settings.format.encoder), get_template(settings.format.template)
    items = plan_work(challenges.tasks, settings)
    plain, fast = tokenizer, fresh(tokenizer)
    clock = StageClock()
    texts = [render(plain, template, encoder, item.augmentation.apply_task(challenges.tasks[item.task_id]),
                    item.test_index, len(challenges.tasks[item.task_id].train)) for item in items]
    clock.lap("render")
    fast_ids = [fast.encode(text, add_special_tokens=False) for text in texts]
    clock.lap("tokenize")
    after_one_pass = fast.describe()
    [fast.encode(text, add_special_tokens=False) for text in texts]  # again: every piece is cached now
    clock.lap("tokenize_again")
    plain_ids = [plain.encode(text, add_special_tokens=False) for text in texts]
    clock.lap("tokenize_without_prompt_tokens")
    if fast_ids != plain_ids:
        raise SystemExit("PromptTokenizer and the tokenizer disagree: the fast path is wrong")
    n, chars = len(items), sum(map(len, texts))
    return {
        "prompt_chars_mean": round(chars / n),
        "cpu_us_per_prompt": {k: round(1e6 * v / n, 1) for k, v in clock.cpu.items()},
        "wall_us_per_prompt": {k: round(1e6 * v / n, 1) for k, v in clock.wall.items()},
        "tokenize_cpu_us_per_1000_chars": round(1e9 * clock.cpu["tokenize"] / chars, 1),
        "tokenize_without_prompt_tokens_cpu_us_per_1000_chars":
            round(1e9 * clock.cpu["tokenize_without_prompt_tokens"] / chars, 1),
        "prompt_tokens": after_one_pass,
    }


def cpu_part(args, model_tokenizer) -> dict:
    """``model_tokenizer``: the --model's Hugging Face tokenizer (each pass wraps it afresh)."""
    path = args.cost_challenges
    if not path.exists():
        print(f"CPU part: {path} not found ({EVAL_HINT}); using the bundled sample instead")
        path = SAMPLE_CHALLENGES
    challenges = load_tasks(path)
    tokenizers = {}
    for name in [n.strip() for n in args.cost_tokenizers.split(",") if n.strip()]:
        if name == "model":
            tokenizers[name] = (model_tokenizer, {"kind": f"the tokenizer of {args.model}"})
        elif name == "qwen2.5":
            from devkit.qwen_vocab import build_qwen_tokenizer

            t = time.perf_counter()
            qwen = build_qwen_tokenizer()
            tokenizers[name] = (qwen, {"kind": "Qwen2.5's real tokenizer (151,665 tokens, scripts/build_qwen_tokenizer.py)",
                                      "build_seconds": round(time.perf_counter() - t, 1)})
        else:
            raise SystemExit(f"unknown tokenizer {name!r}; choose from model, qwen2.5")
    results = {}
    for name, (tokenizer, info) in tokenizers.items():
        figures = cpu_cost(challenges, tokenizer, args.max_model_len, args.views, args.repeats)
        results[name] = {"tokenizer": info, **figures}
        stages = ", ".join(f"{s} {v:.0f}" for s, v in figures["cpu_us_per_prediction"].items())
        print(f"CPU part, {name} tokenizer: {figures['predictions']} predictions, "
              f"{figures['prompt_tokens_per_prediction']} prompt tokens each; CPU us per prediction: {stages}; "
              f"sum {figures['cpu_us_per_prediction_sum']:.0f}, whole run() {figures['cpu_us_per_prediction_whole_run']:.0f} "
              f"(wall: sum {figures['wall_us_per_prediction_sum']:.0f}, whole run() "
              f"{figures['wall_us_per_prediction_whole_run']:.0f})")
        split = figures["render_vs_tokenize"]
        print(f"    of which, per prompt of {split['prompt_chars_mean']} chars (CPU us): "
              + ", ".join(f"{k} {v:.0f}" for k, v in split["cpu_us_per_prompt"].items())
              + f"; {split['tokenize_cpu_us_per_1000_chars']:.0f} us per 1000 chars tokenized "
              f"({split['tokenize_without_prompt_tokens_cpu_us_per_1000_chars']:.0f} by the tokenizer's own encode)")
    return {"challenges": str(path), "tasks": len(challenges.tasks),
            "test_inputs": sum(len(t.test_inputs) for t in challenges.tasks.values()), "views": args.views,
            "max_model_len": args.max_model_len, "repeats": args.repeats, "by_tokenizer": results}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    figures = {"benchmark": "overhead", "machine": machine()}
    tokenizer = load_tokenizer(str(args.model))
    if not args.skip_engine:
        engine = start(args)
        try:
            figures["engine"] = engine.describe()
            figures["engine_part"] = engine_overhead(args, engine, tokenizer)
        finally:
            engine.close()
    if not args.skip_cpu:
        figures["cpu_part"] = cpu_part(args, tokenizer.tokenizer)
    finish(figures, args.out, started)
    return 0


if __name__ == "__main__":
    exit_process(main)
