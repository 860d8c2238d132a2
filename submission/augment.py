"""Augmentations: a dihedral transform, a colour permutation and a train-example order.

An ``Augmentation`` is a small frozen value with a compact text form (``str(aug)`` /
``Augmentation.parse``) that is what predictions.jsonl stores. It applies to a whole task and
inverts exactly on a grid, so an answer given in the augmented space maps back to the original.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .tasks import Example, Task

IDENTITY_COLOURS = tuple(range(10))
# Names of the dihedral transforms: index = 4 * flip + quarter turns (flip applied first).
DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270")


def _rot90(grid: np.ndarray, k: int) -> np.ndarray:
    """np.rot90(grid, k) for k in 0-3 (counter-clockwise), as a view, without its per-call overhead."""
    if k == 1:
        return grid.T[::-1]
    if k == 2:
        return grid[::-1, ::-1]
    if k == 3:
        return grid.T[:, ::-1]
    return grid


@dataclass(frozen=True)
class Augmentation:
    dihedral: int = 0
    colours: tuple[int, ...] = IDENTITY_COLOURS  # new colour of old colour c is colours[c]
    order: tuple[int, ...] | None = None  # train examples in this order; None keeps the task's

    def __post_init__(self):
        if not 0 <= self.dihedral < 8:
            raise ValueError(f"dihedral must be 0-7, got {self.dihedral}")
        if sorted(self.colours) != list(range(10)):
            raise ValueError(f"colours must be a permutation of 0-9, got {self.colours}")
        if self.order is not None and sorted(self.order) != list(range(len(self.order))):
            raise ValueError(f"order must be a permutation of 0..n-1, got {self.order}")

    # -- grids -------------------------------------------------------------------------------
    def apply_grid(self, grid: np.ndarray) -> np.ndarray:
        if self.colours == IDENTITY_COLOURS:  # the 8 dihedral views: no lookup, just a copy
            out = np.array(grid, dtype=np.uint8)
        else:
            out = np.asarray(self.colours, dtype=np.uint8)[grid]
        if self.dihedral >= 4:
            out = out[:, ::-1]  # np.fliplr
        return np.ascontiguousarray(_rot90(out, self.dihedral % 4))

    def invert_grid(self, grid: np.ndarray) -> np.ndarray:
        out = _rot90(np.asarray(grid), -(self.dihedral % 4) % 4)
        if self.dihedral >= 4:
            out = out[:, ::-1]
        if self.colours == IDENTITY_COLOURS:
            return np.array(out, dtype=np.uint8)
        inverse = np.argsort(np.asarray(self.colours)).astype(np.uint8)
        return np.ascontiguousarray(inverse[out])

    def apply_shape(self, shape: tuple[int, int]) -> tuple[int, int]:
        return (shape[1], shape[0]) if self.dihedral % 2 else shape

    # -- tasks -------------------------------------------------------------------------------
    def apply_task(self, task: Task) -> Task:
        if self.order is not None and len(self.order) != len(task.train):
            raise ValueError(
                f"task {task.id}: augmentation {self} orders {len(self.order)} examples, task has {len(task.train)}"
            )
        order = self.order if self.order is not None else range(len(task.train))
        train = tuple(
            Example(self.apply_grid(task.train[i].input), self.apply_grid(task.train[i].output)) for i in order
        )
        return Task(task.id, train, tuple(self.apply_grid(g) for g in task.test_inputs))

    # -- text form ---------------------------------------------------------------------------
    def __str__(self) -> str:
        parts = [f"d{self.dihedral}"]
        if self.colours != IDENTITY_COLOURS:
            parts.append("c" + "".join(map(str, self.colours)))
        if self.order is not None:
            parts.append("o" + ",".join(map(str, self.order)))
        return "-".join(parts)

    @classmethod
    def parse(cls, text: str) -> "Augmentation":
        """Inverse of ``str``: ``d5-c0918273645-o2,0,1``; ValueError on anything else."""
        dihedral, colours, order = None, IDENTITY_COLOURS, None
        for part in text.split("-"):
            kind, body = part[:1], part[1:]
            if kind == "d" and body.isdigit() and dihedral is None:
                dihedral = int(body)
            elif kind == "c" and len(body) == 10 and body.isdigit():
                colours = tuple(int(ch) for ch in body)
            elif kind == "o" and body:
                order = tuple(int(x) for x in body.split(","))
            else:
                raise ValueError(f"not an augmentation: {text!r}")
        if dihedral is None:
            raise ValueError(f"not an augmentation (no dN part): {text!r}")
        return cls(dihedral, colours, order)

    @property
    def description(self) -> str:
        text = DIHEDRAL_NAMES[self.dihedral]
        if self.colours != IDENTITY_COLOURS:
            text += ", colours " + "".join(map(str, self.colours))
        if self.order is not None:
            text += ", order " + ",".join(map(str, self.order))
        return text


def _rng(seed: int, task_id: str, test_index: int) -> np.random.Generator:
    # crc32, not hash(): Python salts str hashes per process, and plans must be reproducible.
    return np.random.default_rng([seed, zlib.crc32(task_id.encode()), test_index])


def plan_augmentations(
    task: Task,
    test_index: int,
    n: int,
    seed: int = 0,
    permute_background: bool = False,
    shuffle_order: bool = True,
) -> list[Augmentation]:
    """N distinct augmentations for one test input of a task.

    The first (up to) 8 are the 8 dihedral transforms with colours and order untouched; the
    rest cycle through the dihedral transforms with a random colour permutation (colour 0 kept
    in place unless ``permute_background``) and, when ``shuffle_order``, a random example order.
    Same arguments, same plan.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    plan = [Augmentation(d) for d in range(min(n, 8))]
    rng = _rng(seed, task.id, test_index)
    seen = set(plan)
    n_train = len(task.train)
    attempts = 0
    while len(plan) < n:
        attempts += 1
        if attempts > 100 * n:
            raise ValueError(f"task {task.id}: cannot find {n} distinct augmentations")
        if permute_background:
            colours = tuple(int(c) for c in rng.permutation(10))
        else:
            colours = (0,) + tuple(int(c) + 1 for c in rng.permutation(9))
        order = tuple(int(i) for i in rng.permutation(n_train)) if shuffle_order and n_train > 1 else None
        aug = Augmentation(len(plan) % 8, colours, order)
        if aug not in seen:
            seen.add(aug)
            plan.append(aug)
    return plan
