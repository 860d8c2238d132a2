"""The task families: the generator draws what the checker recognises, the checker finds real tasks."""

import json

import numpy as np
import pytest

from conftest import ROOT
from submission.augment import Augmentation
from submission.families import (FAMILIES, crop_half, dihedral, explain, generate_task, generated_tasks, gravity,
                                  shift, task_pairs, tile, upscale)
from submission.tasks import MAX_SIDE, load_challenges, load_solutions

IN_FAMILY = ROOT / "data" / "arc-agi-1-in-family"


def test_dihedral_numbering_is_the_augmentations():
    grid = (np.arange(12).reshape(3, 4) % 10).astype(np.uint8)
    for k in range(8):
        assert np.array_equal(dihedral(grid, k), Augmentation(k).apply_grid(grid)), k


def test_transforms_on_exact_grids():
    g = np.array([[1, 0], [0, 2]], dtype=np.uint8)
    assert upscale(g, 2, 1).tolist() == [[1, 0], [1, 0], [0, 2], [0, 2]]
    assert tile(g, (1, 2), (0, 4)).tolist() == [[1, 0, 0, 1], [0, 2, 2, 0]]  # identity, mirror
    assert shift(g, 1, 0).tolist() == [[0, 0], [1, 0]]
    assert shift(g, 0, -1).tolist() == [[0, 0], [2, 0]]
    assert crop_half(np.arange(8).reshape(4, 2), "bottom").tolist() == [[4, 5], [6, 7]]
    assert crop_half(np.arange(8).reshape(2, 4), "right").tolist() == [[2, 3], [6, 7]]
    col = np.array([[3, 0], [0, 0], [4, 5]], dtype=np.uint8)
    assert gravity(col, "down").tolist() == [[0, 0], [3, 0], [4, 5]]
    assert gravity(col, "up").tolist() == [[3, 5], [4, 0], [0, 0]]
    assert gravity(col, "right").tolist() == [[0, 3], [0, 0], [4, 5]]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_generated_task_is_recognised_and_its_answer_is_the_family_transform(family):
    for i in range(40):
        g = generate_task(np.random.default_rng([9, i]), family)
        assert g.family == family
        assert 2 <= len(g.task.train) <= 4 and len(g.task.test_inputs) == 1
        grids = [x for e in g.task.train for x in (e.input, e.output)] + [g.task.test_inputs[0], g.solution]
        assert all(x.ndim == 2 and max(x.shape) <= MAX_SIDE and x.max() <= 9 for x in grids)
        assert all(max(e.input.shape) <= 12 for e in g.task.train)
        # the checker, from the train pairs alone, names the family and maps the test input to the answer
        matches = [e for e in explain(task_pairs(g.task)) if e.family == family]
        assert matches, (family, i, g.params)
        assert any(np.array_equal(e.transform(g.task.test_inputs[0]), g.solution) for e in matches)
        # and the whole task, test pair included (parameters the pairs cannot show, such as a colour
        # that never appears, may differ from the generator's)
        assert family in {e.family for e in explain(task_pairs(g.task, (g.solution,)))}


def test_generation_is_seeded_and_streams_are_apart():
    a, b = generated_tasks(3, 5), generated_tasks(3, 5)
    assert [t.task.id for t in a] == [f"train-3-{i:05d}" for i in range(5)]
    for x, y in zip(a, b):
        assert x.params == y.params and np.array_equal(x.solution, y.solution)
    held = generated_tasks(3, 5, purpose="heldout")
    assert all(not np.array_equal(x.task.test_inputs[0], y.task.test_inputs[0]) or x.params != y.params
               for x, y in zip(a, held))


def test_checker_explains_nothing_outside_the_families():
    g = np.array([[1, 2], [3, 4]], dtype=np.uint8)
    assert explain([(g, g)]) == []  # identity is no family
    assert explain([(g, np.array([[1, 2, 3]], dtype=np.uint8))]) == []
    # a colour map must be one map for every pair: 1->2 in one pair, 1->3 in another is none
    assert [e.family for e in explain([(g, np.where(g == 1, 2, g)), (g, np.where(g == 1, 3, g))])] == []


def test_the_committed_list_of_real_tasks_is_what_the_checker_says():
    """data/arc-agi-1-in-family comes from `scripts/family_tasks.py real`: each task listed is explained,
    pairs and test answers included, by the family the list gives."""
    listing = json.loads((IN_FAMILY / "families.json").read_text())
    challenges = load_challenges(IN_FAMILY / "challenges.json")
    solutions, problems = load_solutions(IN_FAMILY / "solutions.json")
    assert not problems and not challenges.problems
    assert len(listing) == len(challenges.tasks) == 37
    assert {x["split"] for x in listing} == {"training", "evaluation"}
    for item in listing:
        found = explain(task_pairs(challenges.tasks[item["task"]], solutions[item["task"]]))
        assert found and (found[0].family, found[0].params) == (item["family"], item["params"]), item
