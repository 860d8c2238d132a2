"""submission.json: built for every task id (bad tasks get the fallback), written atomically, validated."""

import os
import stat

import numpy as np
import pytest

from submission import submit
from submission.predictions import Prediction
from submission.select import grid_vote
from submission.submit import build_submission, validate_submission, write_bytes_atomic, write_json_atomic
from submission.tasks import Challenges, Example, Task, TaskProblem


def pred(grid, task_id="good", test_index=0, sample=0):
    return Prediction(task_id, test_index, "d0", sample, "", grid, None, -1.0, 10, "stop")


def challenges():
    """One readable task with two test inputs and one the file had but that failed to parse."""
    grid = np.array([[1, 1]], dtype=np.uint8)
    good = Task("good", (Example(grid, grid),), (np.array([[2, 3]], dtype=np.uint8), np.array([[4]], dtype=np.uint8)))
    return Challenges({"good": good}, (TaskProblem("bad", "train", "missing or empty"),), {"good": 2, "bad": 1})


def test_bad_task_gets_the_fallback_even_with_predictions_for_it():
    # predictions left over for a task that no longer parses are not used: it cannot be checked
    preds = [pred([[5]], task_id="bad"), pred([[6]], test_index=1), pred([[6]], test_index=1, sample=1)]
    assert build_submission(challenges(), preds, grid_vote) == {
        "good": [{"attempt_1": [[2, 3]], "attempt_2": [[0]]},  # no predictions: the test input, then [[0]]
                 {"attempt_1": [[6]], "attempt_2": [[4]]}],
        "bad": [{"attempt_1": [[0]], "attempt_2": [[1]]}],
    }


def test_fallback_submission_is_valid_and_complete():
    ch = challenges()
    fallback = submit.fallback_submission(ch)
    assert fallback == {"good": [{"attempt_1": [[2, 3]], "attempt_2": [[0]]}, {"attempt_1": [[4]], "attempt_2": [[0]]}],
                        "bad": [{"attempt_1": [[0]], "attempt_2": [[1]]}]}
    assert validate_submission(ch, fallback) == []


def test_write_json_atomic_creates_missing_folders_and_writes_indented_json(tmp_path):
    path = tmp_path / "out" / "run" / "submission.json"
    write_json_atomic(path, {"t": [{"attempt_1": [[1, 2]]}]})
    assert path.read_bytes() == (b'{\n  "t": [\n    {\n      "attempt_1": [\n        [\n          1,\n          2\n'
                                 b'        ]\n      ]\n    }\n  ]\n}')
    assert os.listdir(path.parent) == ["submission.json"]  # no temporary file left beside it


def test_written_file_is_readable_by_others(tmp_path):
    path = tmp_path / "submission.json"
    write_bytes_atomic(path, b"{}")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_temporary_file_is_hidden_beside_the_target(tmp_path, monkeypatch):
    # beside it, so the final rename stays on one filesystem (atomic); dot-named and .tmp, so no
    # reader globbing *.json picks up a half-written file
    renames = []
    real_replace = os.replace

    def recording_replace(src, dst):
        renames.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    path = tmp_path / "submission.json"
    write_bytes_atomic(path, b"new")
    (src, dst), = renames
    src = os.fspath(src)
    assert os.path.dirname(src) == str(tmp_path) and dst == path
    name = os.path.basename(src)
    assert name.startswith(".submission.json.") and name.endswith(".tmp")
    assert path.read_bytes() == b"new"


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "submission.json"
    path.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["submission.json"]


def test_interrupt_right_after_the_rename_propagates_as_is(tmp_path, monkeypatch):
    # Ctrl-C landing after the rename: the temporary is already gone; cleanup must not replace the
    # interrupt by a FileNotFoundError of its own
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    path = tmp_path / "submission.json"
    with pytest.raises(KeyboardInterrupt):
        write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["submission.json"]


def test_validate_rejects_a_submission_that_is_not_an_object():
    assert validate_submission(challenges(), [[0]]) == ["submission: expected an object of tasks, got list"]


def test_validate_reports_every_problem_of_every_task():
    ch = Challenges({}, (), {"a": 1, "b": 2, "c": 1, "d": 2, "e": 1, "f": 1, "h": 1})
    submission = {
        "a": {"attempt_1": [[0]], "attempt_2": [[0]]},  # an object, not a list of entries
        "b": [{"attempt_1": [[0]], "attempt_2": [[0]]}],  # 1 entry for 2 test inputs
        "c": 7,
        "d": [[[0]], "x"],  # neither entry is an object
        "e": [{}],  # both attempts missing
        # f missing
        "g": [],
        "h": None,  # there, but null: not "missing"
    }
    assert validate_submission(ch, submission) == [
        "task a: expected a list of 1 test entries, got dict",
        "task b: expected a list of 2 test entries, got 1",
        "task c: expected a list of 1 test entries, got int",
        "task d: test[0]: expected an object with attempt_1 and attempt_2",
        "task d: test[1]: expected an object with attempt_1 and attempt_2",
        "task e: test[0].attempt_1: missing",
        "task e: test[0].attempt_2: missing",
        "task f: missing",
        "task h: expected a list of 1 test entries, got NoneType",
        "task g: not in the challenges file",
    ]


def test_validate_checks_both_attempts_as_grids():
    ch = Challenges({}, (), {"a": 2})
    big = [[0] * 31] * 2
    submission = {"a": [{"attempt_2": [[10]]},
                        {"attempt_1": [[1, 2], [3]], "attempt_2": big}]}
    assert validate_submission(ch, submission) == [
        "task a: test[0].attempt_1: missing",
        "task a: test[0].attempt_2: cell [0][0] is 10, not an int 0-9",
        "task a: test[1].attempt_1: ragged grid: row 1 has 1 cells, row 0 has 2",
        "task a: test[1].attempt_2: 2x31 is larger than 30x30",
    ]


def test_validate_accepts_grids_of_30x30():
    ch = Challenges({}, (), {"a": 1})
    full = [[9] * 30 for _ in range(30)]
    assert validate_submission(ch, {"a": [{"attempt_1": full, "attempt_2": [[0]]}]}) == []
