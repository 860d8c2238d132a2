"""Predictions: a completion parsed and mapped back into the task's space, and predictions.jsonl."""

import numpy as np
import pytest

from submission.augment import Augmentation
from submission.encoders import get_encoder
from submission.predictions import (Prediction, append_predictions, grid_array, read_predictions, to_prediction,
                                    unanswerable)

SWAP_1_2 = Augmentation(1, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))  # a quarter turn and colours 1 <-> 2


def test_a_completion_is_recorded_whole_with_its_grid_in_the_tasks_space():
    encoder = get_encoder("minimal")
    # the task's answer [[1, 2]] seen through SWAP_1_2: colours [[2, 1]], then turned anticlockwise [[1], [2]]
    text = encoder.encode(np.array([[1], [2]], dtype=np.uint8))
    p = to_prediction(encoder, "t1", 1, SWAP_1_2, 3, text, -0.5, 4, "stop")
    assert p == Prediction("t1", 1, "d1-c0213456789", 3, text, [[1, 2]], None, -0.5, 4, "stop", "sample")
    assert to_prediction(encoder, "t1", 1, SWAP_1_2, 3, text, -0.5, 4, "stop", mode="greedy").mode == "greedy"


def test_a_truncated_or_unparsable_completion_is_a_recorded_miss():
    encoder = get_encoder("minimal")
    cut = to_prediction(encoder, "t1", 0, Augmentation(0), 0, "12\n3", -1.0, 7, "length")
    assert (cut.grid, cut.error, cut.text, cut.finish_reason) == (None, "truncated: hit max_tokens after 7 tokens",
                                                                  "12\n3", "length")
    junk = to_prediction(encoder, "t1", 0, Augmentation(0), 0, "no grid", -1.0, 2, "stop")
    assert junk.grid is None and junk.error.startswith("parse error: ") and junk.text == "no grid"


def test_an_unanswerable_prompt_is_a_prediction_with_nothing_generated():
    p = unanswerable("t1", 2, SWAP_1_2, 1, "too long")
    assert p == Prediction("t1", 2, "d1-c0213456789", 1, "", None, "unanswerable: too long", None, 0, None, "sample")
    assert p.key == ("t1", 2, "d1-c0213456789", 1)


def test_predictions_round_trip_through_the_file_and_the_count_is_what_was_written(tmp_path):
    path = tmp_path / "predictions.jsonl"
    ps = [unanswerable("t1", 0, Augmentation(d), 0, "x") for d in range(3)]
    assert append_predictions(path, []) == 0 and not path.exists()  # nothing to write: no file
    assert append_predictions(path, ps[:2]) == 2
    assert append_predictions(path, ps[2:]) == 1
    assert list(read_predictions(path)) == ps


def test_a_torn_last_line_is_skipped_and_a_bad_line_names_its_number(tmp_path):
    path = tmp_path / "predictions.jsonl"
    ps = [unanswerable("t1", 0, Augmentation(d), 0, "x") for d in range(2)]
    append_predictions(path, ps)
    with open(path, "ab") as f:
        f.write(b'{"task_id": "t1", "te')  # a crash mid-write
    assert list(read_predictions(path)) == ps
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n[1]\n", 1))  # line 2 is not a record
    with pytest.raises(ValueError) as error:
        list(read_predictions(path))
    assert str(error.value).startswith(f"{path}:2: not a prediction record: ")


def test_grid_array_is_uint8_or_none():
    p = to_prediction(get_encoder("minimal"), "t1", 0, Augmentation(0), 0, "12\n34\n", -1.0, 6, "stop")
    array = grid_array(p)
    assert array.dtype == np.uint8 and array.tolist() == [[1, 2], [3, 4]]
    assert grid_array(unanswerable("t1", 0, Augmentation(0), 0, "x")) is None
