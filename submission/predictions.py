"""Parse completions into grids in the task's own space, and keep them in predictions.jsonl.

One JSON line per completion (append-only, so a crash loses at most the line being written).
Everything downstream (selection, metrics, reports) reads only this file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import orjson

from .augment import Augmentation
from .encoders import ParseError, parse_answer


@dataclass(frozen=True)
class Prediction:
    task_id: str
    test_index: int
    augmentation: str  # str(Augmentation)
    sample: int  # index among the samples drawn for this (test input, augmentation)
    text: str  # the completion as generated (after the opened answer)
    grid: list[list[int]] | None  # in the task's original space; None when there is no answer
    error: str | None  # why there is no grid (parse error, truncation, unanswerable prompt)
    cumulative_logprob: float | None
    token_count: int
    finish_reason: str | None
    mode: str = "sample"  # how it was generated: greedy, sample, beam

    @property
    def key(self) -> tuple[str, int, str, int]:
        """The work item this prediction fills: one per (test input, augmentation, sample)."""
        return (self.task_id, self.test_index, self.augmentation, self.sample)

    @property
    def mean_logprob(self) -> float | None:
        if self.cumulative_logprob is None or self.token_count <= 0:
            return None
        return self.cumulative_logprob / self.token_count


def to_prediction(
    encoder,
    task_id: str,
    test_index: int,
    augmentation: Augmentation,
    sample: int,
    text: str,
    cumulative_logprob: float | None,
    token_count: int,
    finish_reason: str | None,
    mode: str = "sample",
) -> Prediction:
    """A completion parsed and mapped back by the inverse augmentation; never raises on bad text."""
    grid, error = None, None
    if finish_reason == "length":
        error = f"truncated: hit max_tokens after {token_count} tokens"
    else:
        try:
            grid = augmentation.invert_grid(parse_answer(encoder, text)).tolist()
        except ParseError as exc:
            error = f"parse error: {exc}"
    return Prediction(
        task_id, test_index, str(augmentation), sample, text, grid, error,
        cumulative_logprob, token_count, finish_reason, mode,
    )


def unanswerable(task_id: str, test_index: int, augmentation: Augmentation, sample: int, why: str) -> Prediction:
    return Prediction(task_id, test_index, str(augmentation), sample, "", None, f"unanswerable: {why}", None, 0, None)


def append_predictions(path: Path, predictions: Iterable[Prediction]) -> int:
    """Append whole lines and flush them to disk; returns how many were written."""
    # orjson writes a dataclass's fields itself, ~50x faster than dumps(asdict(p)) (no deep copy)
    lines = b"".join(orjson.dumps(p) + b"\n" for p in predictions)
    if not lines:
        return 0
    with open(path, "ab") as f:
        f.write(lines)
        f.flush()
        os.fsync(f.fileno())
    return lines.count(b"\n")


def read_predictions(path: Path) -> Iterator[Prediction]:
    """Every complete line of the file; a torn last line (from a crash mid-write) is skipped."""
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            try:
                yield Prediction(**orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a prediction record: {exc}") from None


def grid_array(prediction: Prediction) -> np.ndarray | None:
    return None if prediction.grid is None else np.asarray(prediction.grid, dtype=np.uint8)
