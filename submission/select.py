"""Choose the two attempts of each test input from its predictions.

Pure functions over predictions. Grid voting: identical grids are grouped, ranked by votes,
ties broken by the mean log-prob per token over the group's predictions (sum of cumulative
log-probs / sum of tokens; groups with no log-probs rank last among equals).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from .predictions import Prediction

Grid = tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Candidate:
    grid: Grid
    votes: int
    mean_logprob: float | None

    def as_list(self) -> list[list[int]]:
        return [list(row) for row in self.grid]


def group_by_test_input(predictions: Iterable[Prediction]) -> dict[tuple[str, int], list[Prediction]]:
    groups: dict[tuple[str, int], list[Prediction]] = defaultdict(list)
    for p in predictions:
        groups[(p.task_id, p.test_index)].append(p)
    return groups


def candidates(predictions: Iterable[Prediction]) -> list[Candidate]:
    """Distinct grids of one test input, best first (votes, then mean log-prob per token)."""
    votes: dict[Grid, int] = defaultdict(int)
    logprob: dict[Grid, float] = defaultdict(float)
    tokens: dict[Grid, int] = defaultdict(int)
    for p in predictions:
        if p.grid is None:
            continue
        grid = tuple(tuple(row) for row in p.grid)
        votes[grid] += 1
        if p.cumulative_logprob is not None and p.token_count > 0:
            logprob[grid] += p.cumulative_logprob
            tokens[grid] += p.token_count
    ranked = [Candidate(g, v, logprob[g] / tokens[g] if tokens[g] else None) for g, v in votes.items()]
    ranked.sort(key=lambda c: (-c.votes, -(c.mean_logprob if c.mean_logprob is not None else float("-inf"))))
    return ranked


def grid_vote(predictions: list[Prediction]) -> list[Grid]:
    return [c.grid for c in candidates(predictions)]


# name -> function from one test input's predictions to its grids, best first
SELECTORS: dict[str, Callable[[list[Prediction]], list[Grid]]] = {"vote": grid_vote}
DEFAULT_SELECTOR = "vote"


def get_selector(name: str) -> Callable[[list[Prediction]], list[Grid]]:
    try:
        return SELECTORS[name]
    except KeyError:
        raise ValueError(f"unknown selection method {name!r}; choose from {', '.join(SELECTORS)}") from None
