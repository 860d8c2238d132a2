import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from submission.augment import Augmentation, plan_augmentations

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


def test_bad_text_forms_are_rejected():
    for text in ["", "x1", "d9", "d1-c012", "d1-d2", "d1-o0,0"]:
        try:
            Augmentation.parse(text)
        except ValueError:
            continue
        raise AssertionError(f"{text!r} parsed")


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
