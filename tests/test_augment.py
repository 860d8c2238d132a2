import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submission import augment
from submission.augment import Augmentation, plan_augmentations
from submission.tasks import Example, Task

grids = st.tuples(st.integers(1, 30), st.integers(1, 30)).flatmap(
    lambda shape: arrays(np.uint8, shape, elements=st.integers(0, 9))
)
augmentations = st.builds(
    Augmentation,
    dihedral=st.integers(0, 7),
    colours=st.permutations(list(range(10))).map(tuple),
    order=st.none() | st.permutations(list(range(4))).map(tuple),
)


@given(grids, augmentations)
@settings(max_examples=500)
def test_every_augmentation_inverts_exactly(grid, aug):
    moved = aug.apply_grid(grid)
    assert moved.shape == aug.apply_shape(grid.shape)
    back = aug.invert_grid(moved)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, grid)


@given(augmentations)
def test_text_form_round_trips(aug):
    assert Augmentation.parse(str(aug)) == aug


def test_the_eight_dihedral_transforms_are_distinct():
    grid = np.arange(6, dtype=np.uint8).reshape(2, 3)
    seen = {Augmentation(d).apply_grid(grid).tobytes() + bytes(Augmentation(d).apply_grid(grid).shape) for d in range(8)}
    assert len(seen) == 8


def test_known_transforms():
    grid = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert Augmentation(1).apply_grid(grid).tolist() == [[2, 4], [1, 3]]  # a quarter turn anticlockwise
    assert Augmentation(4).apply_grid(grid).tolist() == [[2, 1], [4, 3]]  # horizontal flip
    swap = Augmentation(0, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    assert swap.apply_grid(grid).tolist() == [[2, 1], [3, 4]]


@pytest.mark.parametrize("text, message", [
    ("", "not an augmentation: ''"),
    ("x1", "not an augmentation: 'x1'"),
    ("d1-x1", "not an augmentation: 'd1-x1'"),
    ("d1-d2", "not an augmentation: 'd1-d2'"),
    ("d1-c012", "not an augmentation: 'd1-c012'"),  # a colour part is ten digits
    ("d1-cabcdefghij", "not an augmentation: 'd1-cabcdefghij'"),
    ("d1-o", "not an augmentation: 'd1-o'"),
    ("c0123456789", "not an augmentation (no dN part): 'c0123456789'"),
    ("d9", "dihedral must be 0-7, got 9"),
    ("d1-c0123456788", "colours must be a permutation of 0-9, got (0, 1, 2, 3, 4, 5, 6, 7, 8, 8)"),
    ("d1-o0,0", "order must be a permutation of 0..n-1, got (0, 0)"),
])
def test_bad_text_forms_are_rejected_with_what_is_wrong(text, message):
    with pytest.raises(ValueError) as error:
        Augmentation.parse(text)
    assert str(error.value) == message


def test_the_dihedral_index_is_0_to_7():
    assert Augmentation(7).dihedral == 7
    for bad in (-1, 8):
        with pytest.raises(ValueError, match=f"^dihedral must be 0-7, got {bad}$"):
            Augmentation(bad)


@pytest.mark.parametrize("colours", [tuple(range(10)), (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)])
def test_grids_come_out_as_uint8_whatever_goes_in(colours):
    # the parser gives int64 arrays; predictions and prompts assume uint8 (one byte per cell)
    grid = np.array([[1, 2], [3, 4]], dtype=np.int64)
    aug = Augmentation(5, colours)
    assert aug.apply_grid(grid).dtype == np.uint8
    assert aug.invert_grid(aug.apply_grid(grid).astype(np.int64)).dtype == np.uint8
    np.testing.assert_array_equal(aug.invert_grid(aug.apply_grid(grid).astype(np.int64)), grid)


def three_pair_task(task_id: str = "t3", pairs: int = 3) -> Task:
    g = np.array([[1, 2]], dtype=np.uint8)
    return Task(task_id, tuple(Example(g + i, g) for i in range(pairs)), (g,))


def test_apply_task_keeps_the_id_and_refuses_an_order_of_another_length():
    task = three_pair_task()
    assert Augmentation(1, order=(2, 0, 1)).apply_task(task).id == "t3"
    with pytest.raises(ValueError) as error:
        Augmentation(1, order=(1, 0)).apply_task(task)
    assert str(error.value) == "task t3: augmentation d1-o1,0 orders 2 examples, task has 3"


def test_apply_task_reorders_and_transforms(sample_challenges):
    task = sample_challenges.tasks["6ea4a07e"]
    aug = Augmentation(2, order=tuple(reversed(range(len(task.train)))))
    moved = aug.apply_task(task)
    np.testing.assert_array_equal(moved.train[0].input, np.rot90(task.train[-1].input, 2))
    np.testing.assert_array_equal(moved.test_inputs[1], np.rot90(task.test_inputs[1], 2))


def test_plan_is_reproducible_and_starts_with_the_dihedral_views(sample_challenges):
    task = sample_challenges.tasks["e345f17b"]
    plan = plan_augmentations(task, 1, 24, seed=7)
    assert plan == plan_augmentations(task, 1, 24, seed=7)
    assert plan != plan_augmentations(task, 1, 24, seed=8)
    assert plan[:8] == [Augmentation(d) for d in range(8)]
    assert len(set(plan)) == 24
    assert all(a.colours[0] == 0 for a in plan)
    assert all(a.colours != tuple(range(10)) for a in plan[8:])
    assert {a.dihedral for a in plan[8:16]} == set(range(8))


def test_plan_can_move_the_background(sample_challenges):
    task = sample_challenges.tasks["e345f17b"]
    plan = plan_augmentations(task, 0, 40, seed=1, permute_background=True)
    assert any(a.colours[0] != 0 for a in plan[8:])


def test_plan_of_fewer_than_eight(sample_challenges):
    task = sample_challenges.tasks["00576224"]
    assert plan_augmentations(task, 0, 3) == [Augmentation(0), Augmentation(1), Augmentation(2)]


def test_a_plan_of_one_and_a_plan_of_none():
    task = three_pair_task()
    assert plan_augmentations(task, 0, 1) == [Augmentation(0)]
    with pytest.raises(ValueError, match="^n must be at least 1, got 0$"):
        plan_augmentations(task, 0, 0)


@pytest.mark.parametrize("pairs", [2, 3])
def test_views_after_the_eighth_shuffle_the_example_order_when_asked(pairs):
    task = three_pair_task(pairs=pairs)
    plan = plan_augmentations(task, 0, 24)
    assert all(a.order is None for a in plan[:8])
    assert all(sorted(a.order) == list(range(pairs)) for a in plan[8:])
    assert any(a.order != tuple(range(pairs)) for a in plan[8:])
    assert all(a.order is None for a in plan_augmentations(task, 0, 24, shuffle_order=False))


def test_a_task_with_one_train_pair_has_no_order_to_shuffle():
    assert all(a.order is None for a in plan_augmentations(three_pair_task(pairs=1), 0, 24))


class StuckRng:
    """A generator whose every permutation is the identity, counting its draws: the plan can
    then find no new colour view and must give up instead of looping."""

    def __init__(self):
        self.draws = 0

    def permutation(self, n):
        self.draws += 1
        if self.draws > 10_000:
            raise RuntimeError("the plan never gives up")
        return np.arange(n)


def test_a_plan_that_finds_no_new_view_gives_up_after_100_attempts_per_view(monkeypatch):
    rng = StuckRng()
    monkeypatch.setattr(augment, "_rng", lambda *args: rng)
    task = three_pair_task()
    # 8 dihedral views, then one view per dihedral with identity colours and order (0, 1, 2): 16 distinct
    assert len(set(plan_augmentations(task, 0, 16))) == 16
    rng.draws = 0
    with pytest.raises(ValueError, match="^task t3: cannot find 17 distinct augmentations$"):
        plan_augmentations(task, 0, 17)
    assert rng.draws == 2 * 100 * 17  # a colour and an order permutation per attempt
