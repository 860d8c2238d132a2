"""submission.json: build it from ranked grids, write it atomically, validate it.

Layout: ``{task_id: [{"attempt_1": grid, "attempt_2": grid}, ...]}``, one dict per test input,
for every task id of the challenges file, bad tasks included (they get the fallback).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Mapping

import orjson

from .predictions import Prediction
from .select import Grid, TestKey, group_by_test_input, input_copies_last
from .tasks import Challenges, GridError, to_grid

# A task we could not read gets this: a valid grid, and the smallest guess.
FALLBACK_GRID = [[0]]


def attempts_for(ranked: list[Grid], fallback: list[list[int]]) -> dict[str, list[list[int]]]:
    """The first two ranked grids; missing ones are the fallback (never the same grid twice)."""
    grids = [[list(row) for row in g] for g in ranked[:2]]
    if len(grids) < 2 and fallback not in grids:
        grids.append(fallback)
    while len(grids) < 2:
        grids.append(FALLBACK_GRID if grids[0] != FALLBACK_GRID else [[1]])
    return {"attempt_1": grids[0], "attempt_2": grids[1]}


def rank_test_inputs(
    challenges: Challenges,
    predictions: list[Prediction],
    selector: Callable[[list[Prediction]], list[Grid]],
) -> dict[TestKey, list[Grid]]:
    """Each test input of each usable task: its grids as the selector ranks them, a copy of the test
    input last (select.input_copies_last). What submissions, evaluations and reports all rank by."""
    groups = group_by_test_input(predictions)
    return {(task_id, i): input_copies_last(selector(groups.get((task_id, i), [])), test_input)
            for task_id, task in challenges.tasks.items() for i, test_input in enumerate(task.test_inputs)}


def submission_from_ranked(challenges: Challenges, ranked: Mapping[TestKey, list[Grid]]) -> dict[str, list[dict]]:
    """Two attempts for every test input of every task id in the challenges file: the first two
    ranked grids. With fewer, the test input itself fills in: a valid grid of a plausible size."""
    submission = {}
    for task_id, count in challenges.test_counts.items():
        task = challenges.tasks.get(task_id)
        fallbacks = [x.tolist() for x in task.test_inputs] if task is not None else [FALLBACK_GRID] * count
        submission[task_id] = [attempts_for(ranked.get((task_id, i), []), fallbacks[i]) for i in range(count)]
    return submission


def build_submission(
    challenges: Challenges,
    predictions: list[Prediction],
    selector: Callable[[list[Prediction]], list[Grid]],
) -> dict[str, list[dict]]:
    """Two attempts for every test input of every task id in the challenges file (bad tasks get the fallback)."""
    return submission_from_ranked(challenges, rank_test_inputs(challenges, predictions, selector))


def fallback_submission(challenges: Challenges) -> dict[str, list[dict]]:
    return build_submission(challenges, [], lambda _: [])


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside it, then rename: readers see the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from whoever it is shared with
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: object) -> None:
    write_bytes_atomic(path, orjson.dumps(data, option=orjson.OPT_INDENT_2))


def validate_submission(challenges: Challenges, submission: object) -> list[str]:
    """One line per problem; an empty list means complete and valid."""
    if not isinstance(submission, dict):
        return [f"submission: expected an object of tasks, got {type(submission).__name__}"]
    problems = []
    for task_id, count in challenges.test_counts.items():
        if task_id not in submission:
            problems.append(f"task {task_id}: missing")
            continue
        entries = submission[task_id]
        if not isinstance(entries, list) or len(entries) != count:
            got = len(entries) if isinstance(entries, list) else type(entries).__name__
            problems.append(f"task {task_id}: expected a list of {count} test entries, got {got}")
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                problems.append(f"task {task_id}: test[{i}]: expected an object with attempt_1 and attempt_2")
                continue
            for key in ("attempt_1", "attempt_2"):
                if key not in entry:
                    problems.append(f"task {task_id}: test[{i}].{key}: missing")
                    continue
                try:
                    to_grid(entry[key])
                except GridError as exc:
                    problems.append(f"task {task_id}: test[{i}].{key}: {exc}")
    for task_id in submission:
        if task_id not in challenges.test_counts:
            problems.append(f"task {task_id}: not in the challenges file")
    return problems
