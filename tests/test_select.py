import numpy as np
import pytest

from submission.predictions import Prediction
from submission.select import as_grid, candidates, grid_vote, input_copies_last
from submission.submit import attempts_for, build_submission, fallback_submission, validate_submission

A, B, C = [[1, 2]], [[3, 4]], [[5]]


def pred(grid, logprob=-1.0, tokens=10, test_index=0, task_id="t1", sample=0):
    return Prediction(task_id, test_index, "d0", sample, "", grid, None if grid else "parse error: x",
                      logprob if grid else None, tokens, "stop")


def as_lists(grids):
    return [[list(r) for r in g] for g in grids]


def test_votes_rank_first():
    ranked = candidates([pred(A), pred(B), pred(B), pred(C), pred(None)])
    assert [c.votes for c in ranked] == [2, 1, 1]
    assert ranked[0].as_list() == B


def test_ties_break_by_mean_logprob_per_token():
    ranked = candidates([pred(A, -5.0, 10), pred(B, -3.0, 10), pred(C, -4.0, 5)])
    assert [c.as_list() for c in ranked] == [B, A, C]  # -0.3, -0.5, -0.8 per token
    ranked = candidates([pred(A, -2.0, 10), pred(A, -8.0, 10), pred(B, -4.0, 10), pred(B, -4.0, 10)])
    assert ranked[0].as_list() == B and ranked[0].mean_logprob == pytest.approx(-0.4)
    assert ranked[1].mean_logprob == pytest.approx(-0.5)


def test_a_prediction_without_tokens_adds_nothing_to_the_mean_logprob():
    ranked = candidates([pred(A, -5.0, 0), pred(A, -1.0, 2)])
    assert ranked[0].mean_logprob == -0.5  # -1.0 over 2 tokens; the empty one is left out


def test_no_logprob_ranks_last_among_equals():
    ranked = candidates([Prediction("t1", 0, "d0", 0, "", A, None, None, 0, "stop"), pred(B, -9.0, 1)])
    assert [c.as_list() for c in ranked] == [B, A]


def test_all_parse_errors_give_no_candidates():
    assert grid_vote([pred(None), pred(None)]) == []


def test_attempts_fill_with_fallback():
    assert attempts_for([], [[7]]) == {"attempt_1": [[7]], "attempt_2": [[0]]}
    assert attempts_for([((1, 2),)], [[7]]) == {"attempt_1": A, "attempt_2": [[7]]}
    assert attempts_for([((7,),)], [[7]]) == {"attempt_1": [[7]], "attempt_2": [[0]]}
    assert attempts_for([((0,),)], [[0]]) == {"attempt_1": [[0]], "attempt_2": [[1]]}
    assert attempts_for([((1, 2),), ((3, 4),), ((5,),)], [[7]]) == {"attempt_1": A, "attempt_2": B}


def test_submission_covers_every_test_input(sample_challenges):
    preds = [pred(A, task_id="6ea4a07e", test_index=1), pred(B, task_id="6ea4a07e", test_index=1),
             pred(B, task_id="6ea4a07e", test_index=1)]
    submission = build_submission(sample_challenges, preds, grid_vote)
    assert validate_submission(sample_challenges, submission) == []
    assert submission["6ea4a07e"][1] == {"attempt_1": B, "attempt_2": A}
    # no predictions: the test input itself, then [[0]]
    assert submission["6ea4a07e"][0]["attempt_1"] == sample_challenges.tasks["6ea4a07e"].test_inputs[0].tolist()
    assert sum(len(v) for v in submission.values()) == 10
    assert validate_submission(sample_challenges, fallback_submission(sample_challenges)) == []


def test_validate_names_each_problem(sample_challenges):
    submission = fallback_submission(sample_challenges)
    del submission["00576224"]
    submission["6ea4a07e"] = submission["6ea4a07e"][:1]
    submission["e633a9e5"][0]["attempt_2"] = [[1, 2], [3]]
    del submission["66e6c45b"][0]["attempt_1"]
    submission["zzzzzzzz"] = []
    assert validate_submission(sample_challenges, submission) == [
        "task 66e6c45b: test[0].attempt_1: missing",
        "task 00576224: missing",
        "task e633a9e5: test[0].attempt_2: ragged grid: row 1 has 1 cells, row 0 has 2",
        "task 6ea4a07e: expected a list of 2 test entries, got 1",
        "task zzzzzzzz: not in the challenges file",
    ]


def test_a_copy_of_the_test_input_ranks_last_and_the_next_grids_take_the_attempts(sample_challenges):
    copy = sample_challenges.tasks["6ea4a07e"].test_inputs[1].tolist()
    assert input_copies_last([as_grid(copy), as_grid(A), as_grid(B)], np.array(copy)) == [as_grid(A), as_grid(B),
                                                                                          as_grid(copy)]
    assert input_copies_last([as_grid(B), as_grid(A)], copy) == [as_grid(B), as_grid(A)]  # no copy: as it was
    one_more = [pred(copy, task_id="6ea4a07e", test_index=1)] * 3 + [pred(A, task_id="6ea4a07e", test_index=1)]
    submission = build_submission(sample_challenges, one_more, grid_vote)
    assert submission["6ea4a07e"][1] == {"attempt_1": A, "attempt_2": copy}  # 3 votes for the copy, 1 for A
    two_more = one_more + [pred(B, -9.0, task_id="6ea4a07e", test_index=1)]
    assert build_submission(sample_challenges, two_more, grid_vote)["6ea4a07e"][1] == {"attempt_1": A, "attempt_2": B}


def test_a_parse_error_among_the_predictions_is_passed_over_not_the_end_of_them():
    ranked = candidates([pred(None), pred(A), pred(None), pred(B), pred(B)])
    assert [(c.as_list(), c.votes) for c in ranked] == [(B, 2), (A, 1)]
