import json

import numpy as np
import pytest

from submission.tasks import ChallengeFileError, load_challenges, load_solutions

GOOD = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]]}]}


def write(tmp_path, data, name="challenges.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_sample_loads(sample_challenges):
    assert len(sample_challenges.tasks) == 8
    assert not sample_challenges.problems
    assert sum(sample_challenges.test_counts.values()) == 10
    assert sample_challenges.tasks["00576224"].test_inputs[0].tolist() == [[3, 2], [7, 8]]


@pytest.mark.parametrize(
    "task, field, words",
    [
        ({"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}]},
         "train[0].input", "ragged grid: row 1 has 1 cells, row 0 has 2"),
        ({"train": [{"input": [[1]], "output": [[10]]}], "test": [{"input": [[1]]}]},
         "train[0].output", "cell [0][0] is 10, not an int 0-9"),
        ({"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[0] * 31] * 31}]},
         "test[0].input", "31x31 is larger than 30x30"),
        ({"train": [{"input": [[1]], "output": [[1]]}]}, "test", "missing or empty"),
        ({"train": [], "test": [{"input": [[1]]}]}, "train", "missing or empty"),
        ({"train": [{"input": [[1]], "output": [[True]]}], "test": [{"input": [[1]]}]},
         "train[0].output", "cell [0][0] is True"),
        ({"train": [{"input": [[1]], "output": [[1.0]]}], "test": [{"input": [[1]]}]},
         "train[0].output", "cell [0][0] is 1.0"),
        ({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]}, "train[0]", "missing 'output'"),
        ({"train": [{"input": [[1]], "output": []}], "test": [{"input": [[1]]}]},
         "train[0].output", "not a non-empty list of rows"),
        ([1, 2], "task", "expected an object"),
    ],
)
def test_bad_tasks_give_one_clear_line_and_the_rest_load(tmp_path, task, field, words):
    challenges = load_challenges(write(tmp_path, {"good0001": GOOD, "bad00001": task}))
    assert list(challenges.tasks) == ["good0001"]
    [problem] = challenges.problems
    line = str(problem)
    assert line.startswith(f"task bad00001: {field}: ")
    assert words in line
    assert "\n" not in line
    assert set(challenges.test_counts) == {"good0001", "bad00001"}


@pytest.mark.parametrize(
    "content, words",
    [("{not json", "not valid JSON"), ("[1, 2]", "expected an object of tasks"), ("{}", "holds no tasks")],
)
def test_unusable_files_fail_at_once(tmp_path, content, words):
    with pytest.raises(ChallengeFileError, match=words):
        load_challenges(write(tmp_path, content))


def test_missing_file(tmp_path):
    with pytest.raises(ChallengeFileError, match="cannot read"):
        load_challenges(tmp_path / "nope.json")


def test_solutions(tmp_path, sample_solutions):
    assert sample_solutions["00576224"][0].shape == (6, 6)
    solutions, problems = load_solutions(write(tmp_path, {"a": [[[1]]], "b": [[[1, 2], [3]]]}, "s.json"))
    assert list(solutions) == ["a"] and np.array_equal(solutions["a"][0], [[1]])
    assert "ragged" in str(problems[0]) and problems[0].task_id == "b"
