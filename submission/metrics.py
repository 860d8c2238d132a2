"""Metrics of a run against the solutions, per task and overall.

- score: the competition's: a test input counts when either attempt is exact; a task scores
  the fraction of its test inputs solved; the total is the mean over tasks.
- pass_n: fraction of test inputs for which any prediction is exact (the ceiling of selection).
- accuracy: fraction of predictions that are exact.
- correct_size: fraction of predictions with the true output's shape.
- correct_pixels: mean over predictions of the fraction of cells right (0 when the shape is wrong).
- unanswered: fraction of predictions with no grid (parse errors, truncations, unanswerable).
Per task each is over that task's test inputs/predictions; overall each is the mean over tasks,
as the competition averages its score.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .predictions import Prediction
from .select import group_by_test_input

METRICS = ("score", "pass_n", "accuracy", "correct_pixels", "correct_size", "unanswered")


@dataclass(frozen=True)
class TaskMetrics:
    task_id: str
    test_inputs: int
    predictions: int
    score: float
    pass_n: float
    accuracy: float
    correct_pixels: float
    correct_size: float
    unanswered: float


def _prediction_stats(prediction: Prediction, truth: np.ndarray) -> tuple[bool, bool, float]:
    if prediction.grid is None:
        return False, False, 0.0
    grid = np.asarray(prediction.grid)
    if grid.shape != truth.shape:
        return False, False, 0.0
    pixels = float((grid == truth).mean())
    return pixels == 1.0, True, pixels


def task_metrics(
    task_id: str,
    solutions: tuple[np.ndarray, ...],
    submission_entries: list[dict] | None,
    predictions_by_test: dict[int, list[Prediction]],
) -> TaskMetrics:
    solved, passed = 0, 0
    exact = sizes = unanswered = n = 0
    pixels = 0.0
    for i, truth in enumerate(solutions):
        entry = submission_entries[i] if submission_entries and i < len(submission_entries) else {}
        truth_list = truth.tolist()
        solved += any(entry.get(k) == truth_list for k in ("attempt_1", "attempt_2"))
        any_exact = False
        for p in predictions_by_test.get(i, []):
            is_exact, right_size, px = _prediction_stats(p, truth)
            n += 1
            exact += is_exact
            sizes += right_size
            pixels += px
            unanswered += p.grid is None
            any_exact |= is_exact
        passed += any_exact
    tests = len(solutions)
    return TaskMetrics(
        task_id, tests, n, solved / tests, passed / tests,
        exact / n if n else 0.0, pixels / n if n else 0.0, sizes / n if n else 0.0, unanswered / n if n else 0.0,
    )


def evaluate(
    solutions: dict[str, tuple[np.ndarray, ...]],
    submission: dict[str, list[dict]],
    predictions: list[Prediction],
) -> dict:
    """Per task metrics for every task of the submission that has solutions, and their means."""
    groups = group_by_test_input(predictions)
    per_task = []
    for task_id in submission:
        if task_id not in solutions:
            continue
        by_test = {i: groups.get((task_id, i), []) for i in range(len(solutions[task_id]))}
        per_task.append(task_metrics(task_id, solutions[task_id], submission[task_id], by_test))
    overall = {m: float(np.mean([getattr(t, m) for t in per_task])) if per_task else 0.0 for m in METRICS}
    overall["tasks"] = len(per_task)
    overall["test_inputs"] = sum(t.test_inputs for t in per_task)
    overall["predictions"] = sum(t.predictions for t in per_task)
    return {"overall": overall, "tasks": [asdict(t) for t in per_task]}


def format_table(metrics: dict, max_rows: int = 40) -> str:
    """Per-task rows (worst score first, at most max_rows) and the overall line; the task column is
    as wide as the longest id shown (ARC's ids are 8 characters, generated ones longer)."""
    tasks = sorted(metrics["tasks"], key=lambda t: (t["score"], t["pass_n"], t["task_id"]))
    width = max([10] + [len(t["task_id"]) for t in tasks[:max_rows]])
    header = f"{'task':<{width}} {'tests':>5} {'preds':>6} " + " ".join(f"{m:>14}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for t in tasks[:max_rows]:
        lines.append(
            f"{t['task_id']:<{width}} {t['test_inputs']:>5} {t['predictions']:>6} "
            + " ".join(f"{t[m]:>14.3f}" for m in METRICS)
        )
    if len(tasks) > max_rows:
        lines.append(f"... {len(tasks) - max_rows} more tasks in metrics.json")
    o = metrics["overall"]
    lines.append("-" * len(header))
    lines.append(
        f"{'overall':<{width}} {o['test_inputs']:>5} {o['predictions']:>6} " + " ".join(f"{o[m]:>14.3f}" for m in METRICS)
    )
    return "\n".join(lines)
