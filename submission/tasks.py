"""Load and validate ARC tasks in the Kaggle layout.

A challenges file is ``{task_id: {"train": [{"input", "output"}...], "test": [{"input"}...]}}``;
a solutions file is ``{task_id: [output_grid, ...]}``. A bad task is reported as one line and left
out; the rest of the file is still used. A file that is not a JSON object fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

MAX_SIDE = 30


class ChallengeFileError(Exception):
    """The file as a whole is unusable (missing, not JSON, not an object of tasks)."""


class GridError(ValueError):
    """A value is not an ARC grid; the message says why, without naming where it is."""


@dataclass(frozen=True, eq=False)
class Example:
    input: np.ndarray
    output: np.ndarray


@dataclass(frozen=True, eq=False)
class Task:
    id: str
    train: tuple[Example, ...]
    test_inputs: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class TaskProblem:
    task_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"task {self.task_id}: {self.field}: {self.message}"


@dataclass(frozen=True)
class Challenges:
    """The usable tasks of a file, what was wrong with the others, and how many test inputs
    every task id of the file has (bad ones included), so a submission can cover them all."""

    tasks: dict[str, Task]
    problems: tuple[TaskProblem, ...]
    test_counts: dict[str, int] = field(default_factory=dict)


def to_grid(value: object) -> np.ndarray:
    """A validated ARC grid as a uint8 array, or GridError saying what is wrong."""
    if not isinstance(value, list) or not value:
        raise GridError("not a non-empty list of rows")
    width = None
    for r, row in enumerate(value):
        if not isinstance(row, list) or not row:
            raise GridError(f"row {r} is not a non-empty list")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise GridError(f"ragged grid: row {r} has {len(row)} cells, row 0 has {width}")
        for c, cell in enumerate(row):
            # bool is a subclass of int; ARC colours are plain ints only
            if type(cell) is not int or not 0 <= cell <= 9:
                raise GridError(f"cell [{r}][{c}] is {cell!r}, not an int 0-9")
    if len(value) > MAX_SIDE or width > MAX_SIDE:
        raise GridError(f"{len(value)}x{width} is larger than {MAX_SIDE}x{MAX_SIDE}")
    return np.array(value, dtype=np.uint8)


def grid_to_list(grid: np.ndarray) -> list[list[int]]:
    return grid.tolist()


def _read_json_object(path: Path, what: str) -> dict:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ChallengeFileError(f"{what} {path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ChallengeFileError(f"{what} {path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ChallengeFileError(
            f"{what} {path}: expected an object of tasks {{task_id: ...}}, got {type(data).__name__}"
        )
    return data


def _count_tests(raw: object) -> int:
    tests = raw.get("test") if isinstance(raw, dict) else None
    return len(tests) if isinstance(tests, list) and tests else 1


def parse_task(task_id: str, raw: object) -> Task:
    """One task from its JSON value; raises TaskProblem-carrying ValueError on the first fault."""

    def fail(field_name: str, message: str):
        raise _TaskInvalid(TaskProblem(task_id, field_name, message))

    if not isinstance(raw, dict):
        fail("task", f"expected an object with 'train' and 'test', got {type(raw).__name__}")
    train_raw = raw.get("train")
    if not isinstance(train_raw, list) or not train_raw:
        fail("train", "missing or empty (need a non-empty list of examples)")
    test_raw = raw.get("test")
    if not isinstance(test_raw, list) or not test_raw:
        fail("test", "missing or empty (need a non-empty list of test inputs)")

    def grid_at(item: object, where: str, key: str) -> np.ndarray:
        if not isinstance(item, dict) or key not in item:
            fail(where, f"missing '{key}'")
        try:
            return to_grid(item[key])
        except GridError as exc:
            fail(f"{where}.{key}", str(exc))

    train = tuple(
        Example(grid_at(ex, f"train[{i}]", "input"), grid_at(ex, f"train[{i}]", "output"))
        for i, ex in enumerate(train_raw)
    )
    tests = tuple(grid_at(ex, f"test[{i}]", "input") for i, ex in enumerate(test_raw))
    return Task(task_id, train, tests)


class _TaskInvalid(ValueError):
    def __init__(self, problem: TaskProblem):
        super().__init__(str(problem))
        self.problem = problem


def load_challenges(path: str | Path) -> Challenges:
    data = _read_json_object(Path(path), "challenges file")
    if not data:
        raise ChallengeFileError(f"challenges file {path}: holds no tasks")
    tasks: dict[str, Task] = {}
    problems: list[TaskProblem] = []
    counts: dict[str, int] = {}
    for task_id, raw in data.items():
        counts[task_id] = _count_tests(raw)
        try:
            tasks[task_id] = parse_task(task_id, raw)
        except _TaskInvalid as exc:
            problems.append(exc.problem)
    return Challenges(tasks, tuple(problems), counts)


def load_solutions(path: str | Path) -> tuple[dict[str, tuple[np.ndarray, ...]], tuple[TaskProblem, ...]]:
    """Solutions per task id; a task whose solutions are not grids is reported and left out."""
    data = _read_json_object(Path(path), "solutions file")
    solutions: dict[str, tuple[np.ndarray, ...]] = {}
    problems: list[TaskProblem] = []
    for task_id, raw in data.items():
        if not isinstance(raw, list) or not raw:
            problems.append(TaskProblem(task_id, "solutions", "expected a non-empty list of grids"))
            continue
        try:
            solutions[task_id] = tuple(to_grid(g) for g in raw)
        except GridError as exc:
            problems.append(TaskProblem(task_id, "solutions", str(exc)))
    return solutions, tuple(problems)
