"""Rounds under a time budget: the deadline, agreement, which items a round sends, and how many fit."""

import time

from submission.augment import Augmentation
from submission.predictions import Prediction
from submission.rounds import Deadline, WorkItem, agreement, fit_to_time, round_items


def pred(grid, task_id="t1", test_index=0, aug="d0"):
    return Prediction(task_id, test_index, aug, 0, "", grid, None if grid else "parse error: x", None, 0, "stop")


def test_a_deadline_counts_from_now_unless_told_when_it_started():
    before = time.monotonic()
    deadline = Deadline.after(100, reserve=10)
    assert before + 100 <= deadline.at <= time.monotonic() + 100
    assert deadline.generation_ends() == deadline.at - 10
    assert Deadline.after(100, 10, start=5.0) == Deadline(105.0, 10)
    assert Deadline(105.0, 10).left(now=50.0) == 45.0


def test_agreement_is_the_share_of_parsed_predictions_on_the_most_voted_grid():
    assert agreement([]) == (0, 0.0)
    assert agreement([pred(None), pred(None)]) == (0, 0.0)  # nothing parsed: no agreement at all
    assert agreement([pred([[1]]), pred([[1]]), pred([[2]]), pred(None)]) == (3, 2 / 3)


def view(d: int) -> Augmentation:
    """The d-th view of a plan: the 8 dihedral transforms, then the same with colours 1 and 2 swapped."""
    return Augmentation(d % 8, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)) if d >= 8 else Augmentation(d)


def plans_of(*keys, views=8):
    return {key: [view(d) for d in range(views)] for key in keys}


def done_for(key, views):
    return {(key[0], key[1], str(view(d)), 0) for d in range(views)}


def test_a_settled_test_input_gets_no_views_after_round_one_by_default():
    settled, split, fresh = ("t1", 0), ("t2", 0), ("t3", 0)
    plans = plans_of(settled, split, fresh, views=16)
    by_test = {settled: [pred([[1]]) for _ in range(8)],  # 8 parsed, all on one grid
               split: [pred([[1]])] * 4 + [pred([[2]])] * 4}  # fresh has none yet (not in by_test at all)
    done = done_for(settled, 8) | done_for(split, 8) | done_for(fresh, 8)
    items = round_items(plans, done, by_test, round_number=2, views_per_round=8, samples=1)
    assert [(i.task_id, i.view) for i in items] == [("t3", v) for v in range(8, 16)] + [
        ("t2", v) for v in range(8, 16)]  # no agreement first (t3: 0.0), then the split vote (t2: 0.5)
    everything = round_items(plans, done, by_test, 2, 8, 1, adaptive=False)
    assert {i.task_id for i in everything} == {"t1", "t2", "t3"}


def test_round_one_gives_every_test_input_its_views_even_when_already_settled():
    key = ("t1", 0)
    # a resumed run: 8 agreeing predictions of another seed's views, this plan's views still to do
    items = round_items(plans_of(key), set(), {key: [pred([[1]]) for _ in range(8)]}, 1, 8, 1)
    assert [i.view for i in items] == list(range(8))


def test_fit_to_time_keeps_what_the_measured_speed_finishes_with_a_safety_margin():
    items = [WorkItem("t1", 0, Augmentation(d % 8), d) for d in range(20)]
    assert fit_to_time(items, 1, 1.0, 10.0) == items[:8]  # 10 s x 0.85 at 1 s per completion
    assert fit_to_time(items, 2, 0.25, 10.0) == items[:17]  # 2 samples of 0.25 s each: 8.5 / 0.5
    assert fit_to_time(items, 1, None, 10.0) == items  # nothing measured yet
    assert fit_to_time(items, 1, 0.0, 10.0) == items  # too fast to measure
    assert fit_to_time(items, 1, 1.0, float("inf")) == items  # no budget
    assert fit_to_time(items, 1, 1.0, -5.0) == []
