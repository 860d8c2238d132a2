"""Every selection method on hand-built predictions: the exact grids it ranks first and second."""

import numpy as np
import pytest

from submission.compare import compare_methods, curve_sizes, subsample, subsample_curves
from submission.predictions import Prediction
from submission.select import (SELECTORS, as_grid, cell_vote, cell_vote_grid, get_selector, grid_vote, judge,
                               found_judge, judge_totals, judge_vote, uses_judge)
from submission.submit import build_submission
from submission.tasks import Challenges, Example, Task

METHODS = sorted(SELECTORS)


def pred(grid, logprob=-1.0, tokens=10, task_id="t1", test_index=0, sample=0):
    return Prediction(task_id, test_index, "d0", sample, "", grid, None if grid else "parse error: x",
                      logprob if grid else None, tokens, "stop")


def g(rows):
    return as_grid(rows)


@pytest.mark.parametrize("method", METHODS)
def test_no_predictions_and_all_parse_errors_give_nothing(method):
    rank = SELECTORS[method].rank
    assert rank([], None) == [] and rank([], {}) == []
    assert rank([pred(None), pred(None), pred(None)], None) == []
    assert get_selector(method, {})([]) == []


@pytest.mark.parametrize("method", METHODS)
def test_one_candidate_is_the_only_grid(method):
    only = [[1, 2], [3, 4]]
    scores = {g(only): {"d0": -3.0, "d1": -4.0}}
    assert SELECTORS[method].rank([pred(only), pred(None)], scores) == [g(only)]


def test_vote_ties_fall_to_mean_logprob_per_token():
    a, b = [[1]], [[2]]
    assert grid_vote([pred(a, -2.0, 4), pred(b, -1.0, 4)]) == [g(b), g(a)]
    assert grid_vote([pred(a, -2.0, 4), pred(a, -2.0, 4), pred(b, -0.1, 4)]) == [g(a), g(b)]


def test_cell_vote_equals_vote_when_one_grid_holds_the_majority():
    a, b = [[1, 2]], [[3, 4]]
    preds = [pred(a, -5.0), pred(a, -5.0), pred(a, -5.0), pred(b, -0.1)]
    assert cell_vote(preds) == grid_vote(preds) == [g(a), g(b)]
    assert cell_vote_grid(preds) == g(a)


def test_cell_vote_builds_a_grid_no_prediction_made():
    x, y, z = [[1, 2, 9]], [[1, 8, 3]], [[7, 2, 3]]
    preds = [pred(x, -1.0), pred(y, -2.0), pred(z, -3.0)]
    assert grid_vote(preds) == [g(x), g(y), g(z)]
    assert cell_vote(preds) == [g(x), g([[1, 2, 3]]), g(y), g(z)]


def test_cell_vote_replaces_the_votes_second_choice():
    a, b, c, e = [[1, 2, 3]], [[1, 5, 6]], [[7, 5, 6]], [[9, 5, 6]]
    preds = [pred(a), pred(a), pred(c, -1.0), pred(e, -2.0), pred(b, -3.0)]
    assert grid_vote(preds) == [g(a), g(c), g(e), g(b)]
    # cells: 1 (3 of 5), 5 (3 of 5), 6 (3 of 5) -> b
    assert cell_vote(preds) == [g(a), g(b), g(c), g(e)]


def test_cell_vote_uses_the_most_voted_shape_not_the_winners():
    w, p, q, r = [[5]], [[1, 2]], [[1, 3]], [[4, 3]]
    preds = [pred(w, -9.0), pred(w, -9.0), pred(p, -1.0), pred(q, -2.0), pred(r, -3.0)]
    assert grid_vote(preds) == [g(w), g(p), g(q), g(r)]
    assert cell_vote_grid(preds) == g(q)  # 1x2 has 3 predictions: 1 (2 of 3), 3 (2 of 3)
    assert cell_vote(preds) == [g(w), g(q), g(p), g(r)]


def test_cell_vote_ties_go_to_the_best_grid_in_vote_order_holding_a_tied_colour():
    # column 0: 1 and 2 tie (2 each); column 1: 7 and 3 tie (2 each); x holds neither.
    x, a, f, b, c, d = [[9, 9]], [[1, 5]], [[4, 7]], [[2, 7]], [[1, 3]], [[2, 3]]
    preds = [pred(x, -1.0), pred(a, -2.0), pred(f, -3.0), pred(b, -4.0), pred(c, -5.0), pred(d, -6.0)]
    assert grid_vote(preds) == [g(x), g(a), g(f), g(b), g(c), g(d)]
    assert cell_vote_grid(preds) == g([[1, 7]])  # 1 from a (first with 1 or 2), 7 from f (first with 7 or 3)
    assert cell_vote(preds)[:2] == [g(x), g([[1, 7]])]
    # shapes tie (one prediction each): the vote winner's shape
    assert cell_vote_grid([pred([[5]], -1.0), pred([[1, 2]], -2.0)]) == g([[5]])
    assert cell_vote_grid([pred([[5]], -2.0), pred([[1, 2]], -1.0)]) == g([[1, 2]])
    # a tied cell settled on colour 0 (the background) stays settled: 0 is a colour like the others
    assert cell_vote_grid([pred([[0, 1]], -1.0), pred([[5, 1]], -2.0)]) == g([[0, 1]])


def test_judge_plus_vote_puts_a_judged_candidate_before_an_unjudged_one_of_equal_votes():
    a, b = [[1]], [[2]]
    preds = [pred(a, -0.1), pred(b, -5.0)]  # one vote each, a first by log-prob
    assert judge_vote(preds, {g(b): {"d0": -50.0}}) == [g(b), g(a)]  # a was not judged (outside the top-k)


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError) as error:
        get_selector("majority")
    assert str(error.value) == ("unknown selection method 'majority'; choose from vote, cell-vote, judge, "
                                "judge+vote, found+judge")


def test_judge_ranks_by_the_sum_over_views():
    a, b, c = [[1]], [[2]], [[3]]
    preds = [pred(a)] * 3 + [pred(b)] * 2 + [pred(c)]
    scores = {g(a): {"d0": -10.0, "d1": -10.0}, g(b): {"d0": -5.0, "d1": -6.0}, g(c): {"d0": -4.0, "d1": -4.0}}
    assert judge_totals(scores) == {g(a): -20.0, g(b): -11.0, g(c): -8.0}
    assert judge(preds, scores) == [g(c), g(b), g(a)]
    assert judge_vote(preds, scores) == [g(a), g(b), g(c)]  # votes differ: they decide
    assert judge(preds, None) == judge(preds, {}) == grid_vote(preds) == [g(a), g(b), g(c)]


def test_judge_plus_vote_breaks_vote_ties_by_judge_score():
    a, b, c = [[1]], [[2]], [[3]]
    preds = [pred(a, -0.1)] * 2 + [pred(b, -5.0)] * 2 + [pred(c)]
    scores = {g(a): {"d0": -9.0, "d1": -9.0}, g(b): {"d0": -1.0, "d1": -2.0}, g(c): {"d0": -0.5, "d1": -0.5}}
    assert grid_vote(preds) == [g(a), g(b), g(c)]
    assert judge_vote(preds, scores) == [g(b), g(a), g(c)]
    assert judge(preds, scores) == [g(c), g(b), g(a)]


def test_judge_ties_and_unjudged_candidates_keep_vote_order():
    a, b, c, d = [[1]], [[2]], [[3]], [[4]]
    preds = [pred(a)] * 4 + [pred(b)] * 3 + [pred(c)] * 2 + [pred(d)]
    # a and c tie; b lacks view d1 (not judged); d is outside the judged top-k (no scores)
    scores = {g(a): {"d0": -3.0, "d1": -3.0}, g(b): {"d0": -0.1}, g(c): {"d0": -2.0, "d1": -4.0}}
    assert set(judge_totals(scores)) == {g(a), g(c)}
    assert judge(preds, scores) == [g(a), g(c), g(b), g(d)]
    assert judge_vote(preds, scores) == [g(a), g(b), g(c), g(d)]


def test_found_plus_judge_counts_the_views_that_found_a_grid_plus_its_mean_judge_score():
    a, b, c, d = [[1]], [[2]], [[3]], [[4]]

    def found(grid, view, sample=0):
        return Prediction("t1", 0, view, sample, "", grid, None, -1.0, 10, "stop", "dfs")

    # a: 3 predictions but from 2 views; b: 3 views; c: 1 view, far more likely; d: not judged
    preds = ([found(a, "d0"), found(a, "d0", 1), found(a, "d1"), found(b, "d0", 2), found(b, "d1", 1),
              found(b, "d2"), found(c, "d3")] + [found(d, v, 5) for v in ("d0", "d1", "d2", "d3")])
    scores = {g(a): {"d0": -1.0, "d1": -1.0}, g(b): {"d0": -2.0, "d1": -2.2}, g(c): {"d0": -0.2, "d1": -0.2}}
    # a: 2 - 1.0 = 1.0; b: 3 - 2.1 = 0.9; c: 1 - 0.2 = 0.8 (c is 10x as likely per view as a, found once)
    assert found_judge(preds, scores) == [g(a), g(b), g(c), g(d)]
    scores[g(b)] = {"d0": -1.8, "d1": -2.1}  # b: 3 - 1.95 = 1.05
    assert found_judge(preds, scores) == [g(b), g(a), g(c), g(d)]
    assert found_judge(preds, None) == grid_vote(preds) == [g(d), g(a), g(b), g(c)]


def test_selectors_find_their_test_inputs_scores_and_fill_attempts():
    train = (Example(np.array([[1]], np.uint8), np.array([[2]], np.uint8)),)
    challenges = Challenges({"t1": Task("t1", train, (np.array([[7]], np.uint8), np.array([[8]], np.uint8)))},
                            (), {"t1": 2})
    a, b = [[1]], [[2]]
    preds = [pred(a), pred(a), pred(b), pred(b, test_index=1)]
    scores = {("t1", 0): {g(a): {"d0": -9.0}, g(b): {"d0": -1.0}}}
    assert build_submission(challenges, preds, get_selector("judge", scores))["t1"] == [
        {"attempt_1": b, "attempt_2": a},
        {"attempt_1": b, "attempt_2": [[8]]},  # one candidate: the test input fills in
    ]
    assert build_submission(challenges, preds, get_selector("vote"))["t1"][0] == {"attempt_1": a, "attempt_2": b}
    assert [m for m in METHODS if uses_judge(m)] == ["found+judge", "judge", "judge+vote"]
    with pytest.raises(ValueError, match="unknown selection method 'best'"):
        get_selector("best")


def test_compare_scores_ranks_and_costs():
    train = (Example(np.array([[1]], np.uint8), np.array([[2]], np.uint8)),)
    tasks = {t: Task(t, train, (np.array([[0]], np.uint8),)) for t in ("t1", "t2")}
    challenges = Challenges(tasks, (), {"t1": 1, "t2": 1})
    right, wrong, other = [[5]], [[6]], [[7]]
    solutions = {"t1": (np.array(right, np.uint8),), "t2": (np.array(right, np.uint8),)}
    preds = ([pred(wrong, -1.0, task_id="t1")] * 2 + [pred(other, -2.0, task_id="t1"), pred(right, -3.0, task_id="t1")]
             + [pred(other, task_id="t2")])
    scores = {("t1", 0): {g(wrong): {"d0": -9.0}, g(other): {"d0": -8.0}, g(right): {"d0": -1.0}}}
    results = {r.method: r for r in compare_methods(challenges, solutions, preds, METHODS, scores,
                                                    {"judge": 2.5, "judge+vote": 2.5})}
    assert results["vote"].score == 0.0 and results["vote"].pass_n == 0.5
    assert results["vote"].mean_rank == 3.0 and results["vote"].found == 1 and results["vote"].test_inputs == 2
    assert results["judge"].score == 0.5 and results["judge"].mean_rank == 1.0
    assert results["judge+vote"].score == 0.5 and results["judge+vote"].mean_rank == 2.0  # 2 votes, then judge
    assert results["judge"].engine_seconds == 2.5 and results["vote"].engine_seconds == 0.0


def test_compare_ranks_a_copy_of_the_test_input_last():
    task = Task("t1", (Example(np.array([[1]], np.uint8), np.array([[2]], np.uint8)),), (np.array([[0]], np.uint8),))
    challenges = Challenges({"t1": task}, (), {"t1": 1})
    preds = [pred([[0]], task_id="t1")] * 3 + [pred([[6]], -1.0, task_id="t1"), pred([[5]], -2.0, task_id="t1")]
    [result] = compare_methods(challenges, {"t1": (np.array([[5]], np.uint8),)}, preds, ["vote"])
    assert result.mean_rank == 2.0 and result.score == 1.0  # [[6]], [[5]], then the copy with its 3 votes


def test_subsampling_keeps_n_per_test_input_and_the_curve_reaches_the_full_set():
    preds = [pred([[k % 3]], -0.5 if k % 3 == 2 else -1.0, sample=k) for k in range(9)] + [pred([[1]], test_index=1, sample=k) for k in range(3)]
    assert curve_sizes(preds) == [1, 2, 4, 8, 9]
    kept = subsample(preds, 4, np.random.default_rng(0))
    assert sorted((p.test_index, sum(q.test_index == p.test_index for q in kept)) for p in kept)[0] == (0, 4)
    assert len(kept) == 4 + 3 and len({p.key for p in kept}) == 7
    train = (Example(np.array([[1]], np.uint8), np.array([[2]], np.uint8)),)
    challenges = Challenges({"t1": Task("t1", train, (np.zeros((1, 1), np.uint8),) * 2)}, (), {"t1": 2})
    solutions = {"t1": (np.array([[2]], np.uint8), np.array([[1]], np.uint8))}
    rows = subsample_curves(challenges, solutions, preds, ["vote", "cell-vote"], seeds=3)
    assert [r["n"] for r in rows] == [1, 2, 4, 8, 9]
    assert rows[-1]["pass_n"] == 1.0 and rows[-1]["score"]["vote"] == 1.0  # test 0: [[2]] wins the 3-way tie
    assert all(r["pass_n"] >= r["score"]["vote"] for r in rows)
    assert rows[0]["pass_n"] < 1.0  # one prediction of test 0 is [[2]] only a third of the time
    alone = subsample_curves(challenges, solutions, preds, [], seeds=3)  # evaluate --methods judge: no vote method
    assert [(r["n"], r["pass_n"], r["score"]) for r in alone] == [(r["n"], r["pass_n"], {}) for r in rows]
