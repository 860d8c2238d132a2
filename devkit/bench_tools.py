"""What the benchmark scripts share: options, task choice, the machine record, timing, JSON output.

Benchmarks print figures; they assert nothing. Each script measures its alternatives in the same
process, interleaved and repeated, so that their ratios hold on a busy machine even where the
absolute seconds do not.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from submission.engine import EngineSettings, start_engine
from submission.submit import write_json_atomic
from submission.tasks import Challenges, Task, load_challenges

ROOT = Path(__file__).resolve().parent.parent

SAMPLE_CHALLENGES = ROOT / "data" / "sample" / "challenges.json"
DEFAULT_MODEL = ROOT / "models" / "tiny-qwen2"
IN_FAMILY = ROOT / "data" / "arc-agi-1-in-family"  # real ARC-AGI-1 tasks inside the generator's families
# The full ARC-AGI-1 evaluation set is not in the repo: Kaggle's ARC Prize data or
# github.com/fchollet/ARC-AGI (data/evaluation) converted to the Kaggle layout.
EVAL_HINT = ("the ARC-AGI-1 evaluation set in the Kaggle layout (arc-agi_evaluation_challenges.json, "
             "from the ARC Prize competition data)")


def add_common_arguments(p: argparse.ArgumentParser, out_name: str) -> None:
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL,
                   help="model folder for vLLM (default: %(default)s; build it with "
                        "`python scripts/build_tiny_model.py` or `make demo`)")
    p.add_argument("--challenges", type=Path, default=SAMPLE_CHALLENGES,
                   help=f"challenges file (default: the bundled sample, 8 tasks, 10 test inputs); e.g. {EVAL_HINT}")
    p.add_argument("--tasks", type=int, default=0,
                   help="use the N smallest tasks of the file (total grid cells; 0 = all; default: %(default)s)")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / out_name,
                   help="where the figures go as JSON (default: %(default)s)")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-model-len", type=int, default=8192,
                   help="engine context, capped at the model's (default: %(default)s)")
    p.add_argument("--cpu-kv-cache-gib", type=float, default=1.0,
                   help="KV cache on CPU, GiB; ignored on a GPU (default: %(default)s)")
    p.add_argument("--dtype", default="auto", help="model dtype; auto picks from the device (default: %(default)s)")


def solutions_path(args) -> Path | None:
    """--solutions, or the sample's when --challenges is the bundled sample."""
    if args.solutions is None and args.challenges.resolve() == SAMPLE_CHALLENGES.resolve():
        return SAMPLE_CHALLENGES.with_name("solutions.json")
    return args.solutions


def tokens_out(results) -> int:
    """Output tokens of an engine call's results (completions per request)."""
    return sum(c.token_count for completions in results for c in completions)


def task_cells(task: Task) -> int:
    return sum(e.input.size + e.output.size for e in task.train) + sum(g.size for g in task.test_inputs)


def load_tasks(path: Path, n_tasks: int = 0) -> Challenges:
    """The challenges file, cut to its ``n_tasks`` smallest tasks (ties by id) when n_tasks > 0."""
    challenges = load_challenges(path)
    for problem in challenges.problems:
        print(f"challenges: {problem}")
    if n_tasks <= 0 or n_tasks >= len(challenges.tasks):
        return challenges
    keep = sorted(challenges.tasks.values(), key=lambda t: (task_cells(t), t.id))[:n_tasks]
    ids = {t.id for t in keep}
    return Challenges({t.id: t for t in keep}, (),
                      {k: v for k, v in challenges.test_counts.items() if k in ids})


def start(args, log=print):
    """One engine per script (start-up takes 20-35 s on this CPU)."""
    settings = EngineSettings(model=str(args.model), dtype=args.dtype, max_model_len=args.max_model_len,
                              cpu_kv_cache_gib=args.cpu_kv_cache_gib)
    return start_engine(settings, log=log)


HAND_WRITTEN = "<!-- Written by hand from here on: `--docs` keeps this part when it rewrites the figures above. -->"


def write_scorecard(script: str, argv, args, result: dict, json_name: str, markdown) -> dict:
    """A scorecard's JSON under ``args.out`` (the command line first) and, with ``args.docs``,
    its markdown, above the file's hand-written part (from the HAND_WRITTEN line on), which is
    kept; returns the result as written."""
    result = {"command": f"python bench/{script} " + " ".join(sys.argv[1:] if argv is None else argv), **result}
    write_json_atomic(args.out / json_name, result)
    if args.docs:
        args.docs.write_text(with_hand_written(markdown(result), args.docs))
        print(f"wrote {args.docs}")
    return result


def with_hand_written(generated: str, path: Path) -> str:
    """``generated`` followed by the hand-written part of the file at ``path`` (if it has one)."""
    old = path.read_text() if path.exists() else ""
    if HAND_WRITTEN not in old:
        return generated
    return generated.rstrip("\n") + "\n\n" + old[old.index(HAND_WRITTEN):]


def forget_cached_prompts(engine) -> None:
    """Empty vLLM's prefix cache, so a repeat prefills its prompts as the first run did (with the
    cache, a second run of the same prompts skips nearly all prefill work, which a real run never
    does: each prompt is generated once)."""
    llm = getattr(engine, "llm", None)
    if llm is not None and not llm.reset_prefix_cache():
        print("warning: vLLM did not reset its prefix cache; repeats may reuse cached prompts")


def _lscpu_model() -> str | None:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def _ram_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict:
    """What ran the benchmark, and how busy the machine was when it started."""
    import torch

    return {
        "cpu": _lscpu_model() or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "commit": _git_commit(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }


class Timer:
    """Wall seconds of named alternatives, several runs each."""

    def __init__(self):
        self.runs: dict[str, list[float]] = {}

    def time(self, name: str, fn, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.runs.setdefault(name, []).append(time.perf_counter() - start)
        return result

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def best(self, name: str) -> float:
        """The fastest run: the least disturbed by other work on the machine."""
        return min(self.runs[name])

    def paired_ratio(self, name: str, baseline: str) -> float:
        """Median over repeats of name / baseline within the same repeat: the two ran back to back,
        so slow drifts in the machine's load cancel out of each ratio."""
        return statistics.median(a / b for a, b in zip(self.runs[name], self.runs[baseline]))

    def summary(self) -> dict:
        return {name: {"median_s": round(self.median(name), 4), "min_s": round(self.best(name), 4),
                       "runs_s": [round(s, 4) for s in runs]}
                for name, runs in self.runs.items()}


def rotations(names: list[str], repeats: int) -> list[list[str]]:
    """Run orders for each repeat, rotated so no alternative always goes first (or last)."""
    return [names[r % len(names):] + names[: r % len(names)] for r in range(repeats)]


def finish(figures: dict, out: Path, started: float) -> None:
    """Add the end-of-run load and the total time, write the JSON, say where."""
    figures["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["bench_seconds"] = round(time.perf_counter() - started, 1)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, figures)
    print(f"wrote {out}")


def view_subset(predictions, plans, k: int):
    """The predictions of the first k views of each test input's plan."""
    first = {key: {str(a) for a in plan[:k]} for key, plan in plans.items()}
    return [p for p in predictions if str(p.augmentation) in first.get((p.task_id, p.test_index), ())]


def per_task_mean(values: dict[tuple[str, int], bool]) -> float:
    tasks: dict[str, list[bool]] = {}
    for (task_id, _), v in values.items():
        tasks.setdefault(task_id, []).append(v)
    return sum(sum(v) / len(v) for v in tasks.values()) / max(len(tasks), 1)
