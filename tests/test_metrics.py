"""Scores of a run, worked out by hand from small hand-made solutions, submissions and predictions."""

import numpy as np
import pytest

from submission.metrics import evaluate, format_table, task_metrics
from submission.predictions import Prediction

TRUTH = [[1, 2], [3, 4]]


def pred(grid, task_id="t1", test_index=0, sample=0):
    return Prediction(task_id, test_index, "d0", sample, "", grid, None if grid else "parse error: x",
                      -1.0 if grid else None, 10, "stop")


def sols(*grids):
    return tuple(np.array(g, dtype=np.uint8) for g in grids)


def attempts(a1, a2):
    return {"attempt_1": a1, "attempt_2": a2}


def test_score_counts_a_test_input_when_either_attempt_is_exact():
    solutions = {"t1": sols([[1]], [[2]], [[3]])}
    # input 0 right on attempt_2, input 1 right on attempt_1, input 2 wrong on both: 2 of 3
    submission = {"t1": [attempts([[0]], [[1]]), attempts([[2]], [[0]]), attempts([[0]], [[4]])]}
    task = evaluate(solutions, submission, [])["tasks"][0]
    assert task["score"] == pytest.approx(2 / 3)
    assert task["test_inputs"] == 3 and task["predictions"] == 0


def test_score_needs_the_exact_grid_not_a_close_one():
    solutions = {"t1": sols(TRUTH)}
    # right cells but one extra row, and one cell off: neither counts
    submission = {"t1": [attempts([[1, 2], [3, 4], [0, 0]], [[1, 2], [3, 5]])]}
    assert evaluate(solutions, submission, [])["tasks"][0]["score"] == 0.0


def test_prediction_metrics_over_exact_partial_wrong_shape_and_unanswered():
    solutions = {"t1": sols(TRUTH)}
    # order matters to the sums: the unanswered and the exact one come before the others
    preds = [pred(None), pred(TRUTH, sample=1), pred([[1, 2]], sample=2), pred([[1, 2], [3, 0]], sample=3)]
    task = evaluate(solutions, {"t1": [attempts([[0]], [[0]])]}, preds)["tasks"][0]
    assert task == {
        "task_id": "t1", "test_inputs": 1, "predictions": 4,
        "score": 0.0,  # the attempts are wrong even though a prediction is right
        "pass_n": 1.0,  # one exact prediction for the only test input
        "accuracy": 0.25,  # 1 of 4 exact
        "correct_pixels": 0.4375,  # (1 + 0 + 0 + 3/4) / 4: the unanswered and the wrong shape give 0
        "correct_size": 0.5,  # the exact and the 3/4 one have the 2x2 shape
        "unanswered": 0.25,  # 1 of 4 has no grid
    }


def test_a_wrong_shape_with_matching_cells_is_not_right_size_nor_exact():
    # [[1, 2]] broadcast against the 2x2 truth would match half its cells; it must count for nothing
    task = task_metrics("t1", sols(TRUTH), [], {0: [pred([[1, 2]])]})
    assert (task.accuracy, task.correct_size, task.correct_pixels, task.pass_n) == (0.0, 0.0, 0.0, 0.0)
    assert task.unanswered == 0.0


def test_only_unanswered_predictions():
    task = task_metrics("t1", sols(TRUTH), [], {0: [pred(None), pred(None, sample=1)]})
    assert (task.accuracy, task.correct_size, task.correct_pixels, task.pass_n) == (0.0, 0.0, 0.0, 0.0)
    assert task.unanswered == 1.0 and task.predictions == 2


def test_pass_n_is_per_test_input():
    # input 0: the exact prediction comes before a wrong one; input 1: only wrong ones: 1 of 2
    preds = [pred([[5]]), pred([[6]], sample=1), pred([[7]], test_index=1), pred([[8]], test_index=1, sample=1)]
    task = evaluate({"t1": sols([[5]], [[9]])}, {"t1": [attempts([[0]], [[0]])] * 2}, preds)["tasks"][0]
    assert task["pass_n"] == 0.5
    assert task["accuracy"] == 0.25 and task["correct_size"] == 1.0 and task["correct_pixels"] == 0.25


def test_task_without_predictions_scores_zero_on_every_prediction_metric():
    task = evaluate({"t1": sols(TRUTH)}, {"t1": [attempts(TRUTH, [[0]])]}, [])["tasks"][0]
    assert task == {"task_id": "t1", "test_inputs": 1, "predictions": 0, "score": 1.0, "pass_n": 0.0,
                    "accuracy": 0.0, "correct_pixels": 0.0, "correct_size": 0.0, "unanswered": 0.0}


def test_test_inputs_missing_from_the_submission_count_as_unsolved():
    solutions = sols([[1]], [[2]])
    # the submission has an entry for input 0 only (right): 1 of 2
    assert task_metrics("t1", solutions, [attempts([[1]], [[0]])], {}).score == 0.5
    assert task_metrics("t1", solutions, [], {}).score == 0.0
    assert task_metrics("t1", solutions, None, {}).score == 0.0
    assert evaluate({"t1": solutions}, {"t1": [attempts([[0]], [[2]])]}, [])["tasks"][0]["score"] == 0.0


def test_task_metrics_with_predictions_for_some_test_inputs_only():
    # predictions_by_test has no key for input 1: it simply has no predictions
    task = task_metrics("t1", sols([[1]], [[2]]), None, {0: [pred([[1]])]})
    assert (task.pass_n, task.accuracy, task.predictions) == (0.5, 1.0, 1)


def test_evaluate_covers_the_submitted_tasks_that_have_solutions():
    solutions = {"a": sols([[1]]), "b": sols([[2]], [[3]]), "c": sols([[4]])}
    # "x" has no solutions and comes first; "c" is not in the submission: both are left out
    submission = {"x": [attempts([[1]], [[1]])], "a": [attempts([[1]], [[0]])],
                  "b": [attempts([[2]], [[0]]), attempts([[0]], [[0]])]}
    preds = [pred([[1]], task_id="a"), pred([[0]], task_id="b", test_index=1), pred([[9]], task_id="x")]
    result = evaluate(solutions, submission, preds)
    assert [t["task_id"] for t in result["tasks"]] == ["a", "b"]
    overall = result["overall"]
    # means over the 2 tasks: score (1 + 1/2) / 2, pass_n (1 + 0) / 2, accuracy (1 + 0) / 2
    assert overall["score"] == 0.75 and overall["pass_n"] == 0.5 and overall["accuracy"] == 0.5
    assert overall["correct_size"] == 1.0 and overall["unanswered"] == 0.0
    assert overall["tasks"] == 2 and overall["test_inputs"] == 3 and overall["predictions"] == 2


def test_evaluate_with_nothing_to_score_gives_zeros():
    result = evaluate({"a": sols([[1]])}, {"x": [attempts([[1]], [[1]])]}, [])
    assert result == {"overall": {"score": 0.0, "pass_n": 0.0, "accuracy": 0.0, "correct_pixels": 0.0,
                                  "correct_size": 0.0, "unanswered": 0.0,
                                  "tasks": 0, "test_inputs": 0, "predictions": 0},
                      "tasks": []}


HEADER = ("task       tests  preds          score         pass_n       accuracy correct_pixels   correct_size"
          "     unanswered")
RULE = "-" * 113


def row(task_id, tests, preds, *values):
    return {"task_id": task_id, "test_inputs": tests, "predictions": preds,
            **dict(zip(("score", "pass_n", "accuracy", "correct_pixels", "correct_size", "unanswered"), values))}


def test_format_table_exact_text_worst_score_first():
    metrics = {
        "tasks": [row("bbb", 2, 16, 1.0, 1.0, 0.5, 0.75, 1.0, 0.0),
                  row("ccc", 1, 8, 0.0, 0.5, 0.0, 0.125, 0.25, 0.5),
                  row("aaa", 1, 8, 0.0, 0.5, 0.0, 0.0, 0.0, 1.0)],
        "overall": {"tasks": 3, "test_inputs": 4, "predictions": 32, "score": 1 / 3, "pass_n": 2 / 3,
                    "accuracy": 1 / 6, "correct_pixels": 0.2916666, "correct_size": 0.4166666, "unanswered": 0.5},
    }
    # aaa and ccc tie on score and pass_n: the task id decides
    assert format_table(metrics).split("\n") == [
        HEADER,
        RULE,
        "aaa            1      8          0.000          0.500          0.000          0.000          0.000"
        "          1.000",
        "ccc            1      8          0.000          0.500          0.000          0.125          0.250"
        "          0.500",
        "bbb            2     16          1.000          1.000          0.500          0.750          1.000"
        "          0.000",
        RULE,
        "overall        4     32          0.333          0.667          0.167          0.292          0.417"
        "          0.500",
    ]


def test_format_table_sorts_by_pass_n_within_a_score():
    metrics = {"tasks": [row("a", 1, 1, 0.0, 1.0, 0, 0, 0, 0), row("b", 1, 1, 0.0, 0.0, 0, 0, 0, 0)],
               "overall": row("overall", 2, 2, 0, 0, 0, 0, 0, 0)}
    assert [line.split()[0] for line in format_table(metrics).split("\n")[2:4]] == ["b", "a"]


def many(count):
    tasks = [row(f"t{i:02d}", 1, 1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0) for i in range(count)]
    return {"tasks": tasks, "overall": row("overall", count, count, 0, 0, 0, 0, 0, 0)}


@pytest.mark.parametrize("count, max_rows, more", [
    (3, 2, "... 1 more tasks in metrics.json"),
    (7, 2, "... 5 more tasks in metrics.json"),
    (2, 2, None),  # exactly max_rows: all shown, no note
    (41, 40, "... 1 more tasks in metrics.json"),
    (40, 40, None),
])
def test_format_table_cuts_at_max_rows(count, max_rows, more):
    text = format_table(many(count)) if max_rows == 40 else format_table(many(count), max_rows=max_rows)
    lines = text.split("\n")
    shown = min(count, max_rows)
    # header, rule, the rows shown, [the note], rule, overall
    assert len(lines) == 2 + shown + (more is not None) + 2
    assert lines[2 + shown - 1].startswith(f"t{shown - 1:02d} ")
    assert lines[2 + shown] == (more if more else RULE)


def test_format_table_widens_the_task_column_for_a_long_id():
    metrics = {"tasks": [row("heldout-0-00038", 1, 8, 1.0, 1.0, 0.25, 0.5, 0.5, 0.0),
                         row("00576224", 1, 8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)],
               "overall": row("overall", 2, 16, 0.5, 0.5, 0.125, 0.25, 0.25, 0.0)}
    lines = format_table(metrics).split("\n")
    assert lines[0].startswith("task            tests  preds ")  # 15 characters of id, then the columns
    assert lines[2].startswith("00576224            1      8 ")
    assert lines[3].startswith("heldout-0-00038     1      8 ")
    assert lines[5].startswith("overall             2     16 ")
    assert len({len(line) for line in lines}) == 1  # every column lines up
