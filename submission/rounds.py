"""Rounds under a time budget: which work comes next, and how much of it fits in the time left.

Pure planning over plain data. A work item is one view (augmentation) of one test input; each
gets ``samples`` completions. Round r may use the first ``r * views_per_round`` views of every
test input's plan: round 1 gives every test input its base predictions (the 8 dihedral views),
later rounds add colour/order views.

Adaptive rule (``adaptive=True``): after a round, a test input is *settled* when it has at least
``settle_after`` parsed predictions and they all agree on one grid; settled test inputs get no
new views in later rounds, so the time goes to those whose votes are still split. Among unsettled
ones, the least agreed-upon come first, which is what a cut round keeps.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass

from .augment import Augmentation
from .predictions import Prediction

TestKey = tuple[str, int]


@dataclass(frozen=True)
class WorkItem:
    """One prompt: a test input of a task seen through one augmentation."""

    task_id: str
    test_index: int
    augmentation: Augmentation
    view: int  # position in the test input's plan

    @property
    def test_key(self) -> TestKey:
        return (self.task_id, self.test_index)


@dataclass(frozen=True)
class Deadline:
    """Wall-clock limit of the run, on the monotonic clock; ``reserve`` is kept back for the
    final selection and writes."""

    at: float
    reserve: float = 0.0

    @classmethod
    def after(cls, seconds: float, reserve: float, start: float | None = None) -> "Deadline":
        return cls((start if start is not None else time.monotonic()) + seconds, reserve)

    def generation_ends(self) -> float:
        return self.at - self.reserve

    def left(self, now: float | None = None) -> float:
        return self.generation_ends() - (time.monotonic() if now is None else now)


def agreement(predictions: list[Prediction]) -> tuple[int, float]:
    """(parsed predictions, share of them on the most voted grid)."""
    grids = Counter(tuple(map(tuple, p.grid)) for p in predictions if p.grid is not None)
    parsed = sum(grids.values())
    return parsed, (max(grids.values()) / parsed if parsed else 0.0)


def settled(predictions: list[Prediction], settle_after: int) -> bool:
    parsed, share = agreement(predictions)
    return parsed >= settle_after and share == 1.0


def round_items(
    plans: dict[TestKey, list[Augmentation]],
    done: set[tuple[str, int, str, int]],
    by_test: dict[TestKey, list[Prediction]],
    round_number: int,
    views_per_round: int,
    samples: int,
    adaptive: bool = True,
    settle_after: int = 8,
) -> list[WorkItem]:
    """Items of this round still to do (some sample missing), most split test inputs first."""
    limit = round_number * views_per_round
    items = []
    for key, plan in plans.items():
        predictions = by_test.get(key, [])
        if adaptive and round_number > 1 and settled(predictions, settle_after):
            continue
        for view, aug in enumerate(plan[:limit]):
            if any((key[0], key[1], str(aug), s) not in done for s in range(samples)):
                items.append(WorkItem(key[0], key[1], aug, view))
    share = {key: agreement(by_test.get(key, []))[1] for key in plans}
    items.sort(key=lambda item: (share[item.test_key], item.view))  # stable: plan order within ties
    return items


def rounds_needed(views: int, views_per_round: int) -> int:
    return -(-views // views_per_round)


def fit_to_time(items: list[WorkItem], samples: int, seconds_per_completion: float | None,
                seconds_left: float, safety: float = 0.85) -> list[WorkItem]:
    """The leading items that the measured throughput says will finish in time (all of them
    before any throughput is known, the engine's deadline still guarding that round, and all of
    them when there is no time budget: ``seconds_left`` infinite)."""
    if seconds_per_completion is None or seconds_per_completion <= 0 or seconds_left == float("inf"):
        return items  # nothing measured yet, or no budget: every item
    fits = int(max(0.0, seconds_left) * safety / (seconds_per_completion * samples))
    return items[:fits]
