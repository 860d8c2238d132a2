"""Choose the two attempts of each test input from its predictions.

Pure functions over predictions (and, for the judge methods, scores computed beforehand by
judge.py). Every method ranks the distinct grids of one test input, best first; submit.py takes
the first two. The methods (``--selector``):

- ``vote``: identical grids are grouped and ranked by votes, ties broken by the mean log-prob
  per token over the group's predictions (sum of cumulative log-probs / sum of tokens; groups
  with no log-probs rank last among equals). This order is "vote order" below.
- ``cell-vote``: the most voted shape (ties: the shape of the best grid in vote order) is
  rebuilt cell by cell, each cell taking the colour most predictions of that shape give it
  (ties: the colour of the best grid in vote order among the tied colours). attempt_1 is the
  vote winner, attempt_2 the cell-voted grid, or the vote's second grid when the two agree
  (they always do when the vote winner holds a majority of the most voted shape). So it differs
  from ``vote`` only in attempt_2, and only where that is not so.
- ``judge``: candidates are ranked by their log-likelihood under the model summed over the
  judge's augmented views (the product of the views' probabilities). Only candidates scored
  under every view count as judged; the others follow in vote order. With no scores at all
  (as during generation, before the judge ran) this is vote order.
- ``judge+vote``: votes first; among equal votes, judged candidates by their mean score over
  views, then the rest in vote order.
- ``found+judge``: NVARC's ranking of enumerated (dfs) candidates: the number of views whose
  decoding found the grid plus its mean judge log-likelihood per view (a candidate found by one
  more view outranks one up to 1 nat more likely per view); judged candidates first by that
  score, then the rest in vote order.

Whatever the method, a grid equal to its test input goes last (``input_copies_last``, applied by
submit.rank_test_inputs, which submissions, evaluations, comparisons and reports all rank through):
no test output of ARC-AGI-1 (0 of 835, training and evaluation: bench/answer_budget.py) equals
its input, while a copy of the input is a weak model's commonest wrong answer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

from .predictions import Prediction

Grid = tuple[tuple[int, ...], ...]
TestKey = tuple[str, int]
# A test input's judge scores: candidate grid -> {view (str(Augmentation)): log-likelihood}.
JudgeScores = Mapping[Grid, Mapping[str, float]]


@dataclass(frozen=True)
class Candidate:
    grid: Grid
    votes: int
    mean_logprob: float | None

    def as_list(self) -> list[list[int]]:
        return [list(row) for row in self.grid]


def as_grid(rows: Iterable[Iterable[int]]) -> Grid:
    return tuple(tuple(map(int, row)) for row in rows)


def input_copies_last(ranked: list[Grid], test_input) -> list[Grid]:
    """The ranking with the grid equal to the test input moved to the end (kept: it still beats the
    fallback)."""
    copy = as_grid(test_input.tolist() if isinstance(test_input, np.ndarray) else test_input)
    return [g for g in ranked if g != copy] + [g for g in ranked if g == copy]


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
        grid = tuple(map(tuple, p.grid))
        votes[grid] += 1
        if p.cumulative_logprob is not None and p.token_count > 0:
            logprob[grid] += p.cumulative_logprob
            tokens[grid] += p.token_count
    ranked = [Candidate(g, v, logprob[g] / tokens[g] if tokens[g] else None) for g, v in votes.items()]
    ranked.sort(key=lambda c: (-c.votes, -(c.mean_logprob if c.mean_logprob is not None else float("-inf"))))
    return ranked


def grid_vote(predictions: list[Prediction], scores: JudgeScores | None = None) -> list[Grid]:
    return [c.grid for c in candidates(predictions)]


def cell_vote_grid(predictions: list[Prediction]) -> Grid | None:
    """The most voted shape, each cell its majority colour (ties as in the module docstring)."""
    ranked = [c.grid for c in candidates(predictions)]
    if not ranked:
        return None
    grids = [np.asarray(p.grid, dtype=np.int64) for p in predictions if p.grid is not None]
    shape_votes = Counter(g.shape for g in grids)
    top = max(shape_votes.values())
    tied_shapes = {s for s, v in shape_votes.items() if v == top}
    shape = next(np.shape(g) for g in ranked if np.shape(g) in tied_shapes)
    stack = np.stack([g for g in grids if g.shape == shape])
    counts = np.stack([(stack == colour).sum(axis=0) for colour in range(10)])  # colour x rows x cols
    tied = counts == counts.max(axis=0)
    result = np.full(shape, -1)
    rows, cols = np.indices(shape)
    for grid in ranked:  # vote order settles the ties; every tied colour occurs in some grid
        arr = np.asarray(grid, dtype=np.int64)
        if arr.shape != shape:
            continue
        take = (result < 0) & tied[arr, rows, cols]
        result[take] = arr[take]
    return as_grid(result)


def cell_vote(predictions: list[Prediction], scores: JudgeScores | None = None) -> list[Grid]:
    ranked = grid_vote(predictions)
    if not ranked:
        return []
    cell = cell_vote_grid(predictions)
    return [ranked[0]] + ([cell] if cell != ranked[0] else []) + [g for g in ranked[1:] if g != cell]


def judge_totals(scores: JudgeScores | None) -> dict[Grid, float]:
    """Sum over views for the candidates scored under every view that any candidate was scored under."""
    if not scores:
        return {}
    views = set().union(*(s.keys() for s in scores.values()))
    return {grid: sum(s.values()) for grid, s in scores.items() if s and set(s) == views}


def judge(predictions: list[Prediction], scores: JudgeScores | None = None) -> list[Grid]:
    ranked = grid_vote(predictions)
    totals = judge_totals(scores)
    judged = sorted((g for g in ranked if g in totals), key=lambda g: -totals[g])  # stable: ties keep vote order
    return judged + [g for g in ranked if g not in totals]


def judge_vote(predictions: list[Prediction], scores: JudgeScores | None = None) -> list[Grid]:
    ranked = candidates(predictions)
    totals = judge_totals(scores)
    # Judged candidates share their views, so the sum orders them as the mean does.
    order = sorted(
        ranked,  # stable: equal keys keep vote order
        key=lambda c: (-c.votes, c.grid not in totals, -totals.get(c.grid, 0.0)),
    )
    return [c.grid for c in order]


def found_judge(predictions: list[Prediction], scores: JudgeScores | None = None) -> list[Grid]:
    ranked = grid_vote(predictions)
    totals = judge_totals(scores)
    if not totals:
        return ranked
    views_judged = len(set().union(*(s.keys() for s in scores.values())))
    found_by: dict[Grid, set[str]] = defaultdict(set)
    for p in predictions:
        if p.grid is not None:
            found_by[as_grid(p.grid)].add(p.augmentation)
    score = {g: len(found_by[g]) + totals[g] / views_judged for g in ranked if g in totals}
    judged = sorted(score, key=lambda g: -score[g])  # stable: ties keep vote order
    return judged + [g for g in ranked if g not in score]


@dataclass(frozen=True)
class SelectionMethod:
    rank: Callable[[list[Prediction], JudgeScores | None], list[Grid]]
    uses_judge: bool
    summary: str


SELECTORS: dict[str, SelectionMethod] = {
    "vote": SelectionMethod(grid_vote, False, "grid voting, ties by mean log-prob per token"),
    "cell-vote": SelectionMethod(cell_vote, False, "vote winner, then the cell-by-cell majority grid"),
    "judge": SelectionMethod(judge, True, "sum of the model's log-likelihood over augmented views"),
    "judge+vote": SelectionMethod(judge_vote, True, "votes, ties by the mean judge score"),
    "found+judge": SelectionMethod(found_judge, True, "views that found the grid plus its mean judge score (NVARC)"),
}
DEFAULT_SELECTOR = "vote"


def uses_judge(name: str) -> bool:
    return _method(name).uses_judge


def _method(name: str) -> SelectionMethod:
    try:
        return SELECTORS[name]
    except KeyError:
        raise ValueError(f"unknown selection method {name!r}; choose from {', '.join(SELECTORS)}") from None


def get_selector(
    name: str, judge_scores: Mapping[TestKey, JudgeScores] | None = None
) -> Callable[[list[Prediction]], list[Grid]]:
    """The named method as a function of one test input's predictions (what build_submission takes).

    Judge methods look their test input's scores up in ``judge_scores``; without scores they
    rank in vote order (intermediate submissions during generation are built that way).
    """
    method = _method(name)
    if not method.uses_judge:
        return lambda predictions: method.rank(predictions, None)
    table = judge_scores or {}

    def select(predictions: list[Prediction]) -> list[Grid]:
        if not predictions:
            return []
        return method.rank(predictions, table.get((predictions[0].task_id, predictions[0].test_index)))

    return select
