"""Families of whole-grid transformations that real ARC tasks use: a generator and a checker.

A family is a set of transformations with parameters (``rot90``; colour map ``1->2``; tiling
2x2 of ``flip, identity / rot180, flip+rot180`` ...). The generator draws ARC-like tasks of a
family from a seed (training data for the demo model, held-out tasks for measuring it); the
checker finds, for any task, the families whose parameters, inferred from the pairs, explain every
pair. Both are pure functions over numpy grids; the checker never looks at the generator's choices.

Dihedral transforms are numbered as in augment.py: index = 4 * flip + quarter turns (flip first).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from submission.tasks import MAX_SIDE, Example, Task, grid_to_list

Grid = np.ndarray

FAMILIES = ("dihedral", "colour-map", "dihedral+colour-map", "upscale", "tiling", "shift", "crop-half", "gravity")
# Sides of generated inputs; outputs stay within MAX_SIDE.
MIN_SIDE, MAX_INPUT_SIDE = 2, 12
SHIFT_RANGE = 3
# Tilings the generator draws from: layouts of blocks, each block a dihedral transform of the input.
TILING_LAYOUTS = ((1, 2), (2, 1), (2, 2), (1, 3), (3, 1), (3, 3), (2, 3), (3, 2), (1, 4), (4, 1), (1, 5), (5, 1))
GRAVITY_DIRECTIONS = ("down", "up", "left", "right")
HALVES = ("top", "bottom", "left", "right")


def dihedral(grid: Grid, k: int) -> Grid:
    """The k-th dihedral transform (augment.py's numbering)."""
    out = grid[:, ::-1] if k >= 4 else grid
    return np.ascontiguousarray(np.rot90(out, k % 4))


DIHEDRAL_NAMES = ("identity", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270")
SHAPE_KEEPING = (0, 2, 4, 6)  # dihedral transforms that keep a non-square grid's shape


def upscale(grid: Grid, fy: int, fx: int) -> Grid:
    return np.kron(grid, np.ones((fy, fx), dtype=grid.dtype))


def tile(grid: Grid, layout: tuple[int, int], blocks: tuple[int, ...]) -> Grid:
    rows, cols = layout
    return np.block([[dihedral(grid, blocks[r * cols + c]) for c in range(cols)] for r in range(rows)])


def shift(grid: Grid, dy: int, dx: int) -> Grid:
    """Content moved by (dy, dx); what leaves the grid is lost, what enters is background 0."""
    h, w = grid.shape
    out = np.zeros_like(grid)
    if abs(dy) >= h or abs(dx) >= w:
        return out
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = grid[ys, xs]
    return out


def crop_half(grid: Grid, half: str) -> Grid:
    h, w = grid.shape
    return {"top": grid[: h // 2], "bottom": grid[h - h // 2 :], "left": grid[:, : w // 2],
            "right": grid[:, w - w // 2 :]}[half].copy()


_GRAVITY_TURNS = {"down": 0, "right": 3, "up": 2, "left": 1}  # quarter turns that make it "down"


def gravity(grid: Grid, direction: str) -> Grid:
    """Every non-background cell falls towards one side, keeping its order within its column."""
    k = _GRAVITY_TURNS[direction]
    g = np.rot90(grid, k)
    out = np.zeros_like(g)
    for c in range(g.shape[1]):
        cells = g[:, c][g[:, c] != 0]
        if len(cells):
            out[g.shape[0] - len(cells) :, c] = cells
    return np.ascontiguousarray(np.rot90(out, -k))


def apply_colour_map(grid: Grid, mapping: tuple[int, ...]) -> Grid:
    return np.asarray(mapping, dtype=grid.dtype)[grid]


# -- the checker --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Explanation:
    """A family and the parameters, inferred from the pairs, that map every input to its output."""

    family: str
    params: str
    transform: Callable[[Grid], Grid]

    def __str__(self) -> str:
        return f"{self.family} ({self.params})"


def _infer_colour_map(pairs: list[tuple[Grid, Grid]]) -> tuple[int, ...] | None:
    """The one colour map (identity for unseen colours) that maps each input to its output."""
    mapping: dict[int, int] = {}
    for x, y in pairs:
        if x.shape != y.shape:
            return None
        for a, b in zip(x.ravel().tolist(), y.ravel().tolist()):
            if mapping.setdefault(a, b) != b:
                return None
    return tuple(mapping.get(c, c) for c in range(10))


def _explain_dihedral(pairs):
    for k in range(1, 8):
        if all(x.shape == dihedral(x, k).shape == y.shape and np.array_equal(dihedral(x, k), y) for x, y in pairs):
            yield Explanation("dihedral", DIHEDRAL_NAMES[k], lambda g, k=k: dihedral(g, k))


def _explain_colour_map(pairs):
    for k in range(8):
        turned = [(dihedral(x, k), y) for x, y in pairs]
        mapping = _infer_colour_map(turned)
        if mapping is None or mapping == tuple(range(10)):
            continue
        changed = ", ".join(f"{a}->{b}" for a, b in enumerate(mapping) if a != b)
        if k == 0:
            yield Explanation("colour-map", changed, lambda g, m=mapping: apply_colour_map(g, m))
        else:
            yield Explanation("dihedral+colour-map", f"{DIHEDRAL_NAMES[k]}, {changed}",
                              lambda g, k=k, m=mapping: apply_colour_map(dihedral(g, k), m))


def _explain_upscale(pairs):
    x0, y0 = pairs[0]
    if y0.shape[0] % x0.shape[0] or y0.shape[1] % x0.shape[1]:
        return
    fy, fx = y0.shape[0] // x0.shape[0], y0.shape[1] // x0.shape[1]
    if (fy, fx) != (1, 1) and all(np.array_equal(upscale(x, fy, fx), y) for x, y in pairs):
        yield Explanation("upscale", f"{fy}x{fx}", lambda g, fy=fy, fx=fx: upscale(g, fy, fx))


def _explain_tiling(pairs):
    x0, y0 = pairs[0]
    if y0.shape[0] % x0.shape[0] or y0.shape[1] % x0.shape[1]:
        return
    layout = (y0.shape[0] // x0.shape[0], y0.shape[1] // x0.shape[1])
    if layout == (1, 1):
        return
    blocks = []
    for r in range(layout[0]):
        for c in range(layout[1]):
            for k in range(8):
                if all(
                    y.shape == (layout[0] * x.shape[0], layout[1] * x.shape[1])
                    and dihedral(x, k).shape == x.shape
                    and np.array_equal(
                        y[r * x.shape[0] : (r + 1) * x.shape[0], c * x.shape[1] : (c + 1) * x.shape[1]], dihedral(x, k)
                    )
                    for x, y in pairs
                ):
                    blocks.append(k)
                    break
            else:
                return
    names = " / ".join(
        ", ".join(DIHEDRAL_NAMES[blocks[r * layout[1] + c]] for c in range(layout[1])) for r in range(layout[0])
    )
    yield Explanation("tiling", f"{layout[0]}x{layout[1]}: {names}",
                      lambda g, lay=layout, b=tuple(blocks): tile(g, lay, b))


def _explain_shift(pairs):
    x0, y0 = pairs[0]
    if x0.shape != y0.shape:
        return
    for dy in range(-SHIFT_RANGE, SHIFT_RANGE + 1):
        for dx in range(-SHIFT_RANGE, SHIFT_RANGE + 1):
            if (dy, dx) != (0, 0) and all(x.shape == y.shape and np.array_equal(shift(x, dy, dx), y) for x, y in pairs):
                yield Explanation("shift", f"{dy:+d} rows, {dx:+d} columns", lambda g, dy=dy, dx=dx: shift(g, dy, dx))
                return


def _explain_crop_half(pairs):
    for half in HALVES:
        if all(crop_half(x, half).shape == y.shape and np.array_equal(crop_half(x, half), y) for x, y in pairs):
            yield Explanation("crop-half", half, lambda g, half=half: crop_half(g, half))


def _explain_gravity(pairs):
    for direction in GRAVITY_DIRECTIONS:
        if all(x.shape == y.shape and not np.array_equal(x, y) for x, y in pairs[:1]) and all(
            x.shape == y.shape and np.array_equal(gravity(x, direction), y) for x, y in pairs
        ):
            yield Explanation("gravity", direction, lambda g, d=direction: gravity(g, d))


_CHECKS = {
    "dihedral": _explain_dihedral,
    "colour-map": _explain_colour_map,  # also yields dihedral+colour-map
    "upscale": _explain_upscale,
    "tiling": _explain_tiling,
    "shift": _explain_shift,
    "crop-half": _explain_crop_half,
    "gravity": _explain_gravity,
}


def explain(pairs: list[tuple[Grid, Grid]]) -> list[Explanation]:
    """Every family explanation that maps each input of ``pairs`` exactly to its output.

    The list is ordered by family (FAMILIES' order), so ``explain(...)[0]`` is the simplest.
    Pairs whose input equals its output are explained by nothing here (no identity family).
    """
    pairs = [(np.asarray(x), np.asarray(y)) for x, y in pairs]
    if not pairs or all(x.shape == y.shape and np.array_equal(x, y) for x, y in pairs):
        return []
    found = [e for check in _CHECKS.values() for e in check(pairs)]
    return sorted(found, key=lambda e: FAMILIES.index(e.family))


def task_pairs(task: Task, solutions: tuple[Grid, ...] | None = None) -> list[tuple[Grid, Grid]]:
    """A task's train pairs, and its test pairs where the solutions are given."""
    pairs = [(ex.input, ex.output) for ex in task.train]
    if solutions is not None:
        pairs += list(zip(task.test_inputs, solutions))
    return pairs


# -- the generator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedTask:
    task: Task
    solution: Grid  # the test input's output
    family: str
    params: str


def random_grid(rng: np.random.Generator, h: int, w: int, colours: tuple[int, ...], dense: bool = False) -> Grid:
    """An ARC-looking grid: background 0 with a few objects, sparse noise, or a dense pattern; with
    ``dense``, every cell coloured (no background unless there is a single colour), as in the many
    real 3x3 tasks (3c9b0459, 6150a2bd)."""
    if dense:
        palette = colours if len(colours) > 1 else (0,) + colours
        return rng.choice(np.asarray(palette, dtype=np.uint8), size=(h, w))
    style = rng.choice(["objects", "objects", "noise", "dense"], p=[0.35, 0.25, 0.25, 0.15])
    grid = np.zeros((h, w), dtype=np.uint8)
    if style == "dense":
        return rng.choice(np.asarray((0,) + colours, dtype=np.uint8), size=(h, w))
    if style == "noise":
        density = rng.uniform(0.15, 0.5)
        mask = rng.random((h, w)) < density
        grid[mask] = rng.choice(np.asarray(colours, dtype=np.uint8), size=int(mask.sum()))
        return grid
    for _ in range(int(rng.integers(1, 2 + (h * w) // 12))):
        colour = colours[int(rng.integers(len(colours)))]
        oh, ow = int(rng.integers(1, max(2, h // 2 + 1))), int(rng.integers(1, max(2, w // 2 + 1)))
        y, x = int(rng.integers(0, h - oh + 1)), int(rng.integers(0, w - ow + 1))
        if rng.random() < 0.5:
            grid[y : y + oh, x : x + ow] = colour  # a rectangle
        else:  # a blob: a random walk inside the box
            cy, cx = y, x
            for _ in range(oh * ow):
                grid[cy, cx] = colour
                cy = min(max(cy + int(rng.integers(-1, 2)), y), y + oh - 1)
                cx = min(max(cx + int(rng.integers(-1, 2)), x), x + ow - 1)
    return grid


def _draw_family(rng: np.random.Generator, family: str, max_side: int, pool: tuple[int, ...] | None = None):
    """(transform, params text, input side range, square inputs?). A colour map permutes or replaces
    colours of ``pool`` where one is given (the task's colours), else of all ten."""
    square = False
    lo, hi = MIN_SIDE, max_side
    if family == "dihedral":
        k = int(rng.integers(1, 8))
        square = k % 2 == 1 and rng.random() < 0.3
        return (lambda g: dihedral(g, k)), DIHEDRAL_NAMES[k], (lo, hi), square
    if family in ("colour-map", "dihedral+colour-map"):
        k = int(rng.integers(1, 8)) if family != "colour-map" else 0
        mapping = list(range(10))
        if pool is not None and rng.random() < 0.5:  # many of the task's colours permuted (0d3d703e)
            chosen = rng.choice(np.asarray(pool), size=int(rng.integers(2, len(pool) + 1)), replace=False)
            shuffled = rng.permutation(chosen)
            while np.array_equal(shuffled, chosen):
                shuffled = rng.permutation(chosen)
            for a, b in zip(chosen, shuffled):
                mapping[int(a)] = int(b)
        elif rng.random() < 0.5:  # a permutation of a few colours
            chosen = rng.choice(np.arange(10), size=int(rng.integers(2, 5)), replace=False)
            shuffled = rng.permutation(chosen)
            while np.array_equal(shuffled, chosen):
                shuffled = rng.permutation(chosen)
            for a, b in zip(chosen, shuffled):
                mapping[int(a)] = int(b)
        else:  # a few colours replaced
            for a in rng.choice(np.arange(1, 10), size=int(rng.integers(1, 3)), replace=False):
                mapping[int(a)] = int(rng.choice([c for c in range(10) if c != a]))
        m = tuple(mapping)
        changed = ", ".join(f"{a}->{b}" for a, b in enumerate(m) if a != b)
        params = changed if k == 0 else f"{DIHEDRAL_NAMES[k]}, {changed}"
        return (lambda g: apply_colour_map(dihedral(g, k), m)), params, (lo, hi), False
    if family == "upscale":
        fy, fx = (2, 2) if rng.random() < 0.5 else (3, 3) if rng.random() < 0.6 else tuple(
            int(v) for v in rng.choice([(1, 2), (2, 1), (2, 3), (3, 2)]))
        return (lambda g: upscale(g, fy, fx)), f"{fy}x{fx}", (lo, min(hi, MAX_SIDE // max(fy, fx))), False
    if family == "tiling":
        layout = TILING_LAYOUTS[int(rng.integers(len(TILING_LAYOUTS)))]
        side_cap = min(hi, MAX_SIDE // max(layout))
        square = rng.random() < 0.4
        blocks = _tiling_blocks(rng, layout, square)
        names = " / ".join(
            ", ".join(DIHEDRAL_NAMES[blocks[r * layout[1] + c]] for c in range(layout[1])) for r in range(layout[0])
        )
        return (lambda g: tile(g, layout, blocks)), f"{layout[0]}x{layout[1]}: {names}", (lo, side_cap), square
    if family == "shift":
        dy, dx = 0, 0
        while (dy, dx) == (0, 0):
            dy, dx = (int(v) for v in rng.integers(-SHIFT_RANGE, SHIFT_RANGE + 1, size=2))
        return (lambda g: shift(g, dy, dx)), f"{dy:+d} rows, {dx:+d} columns", (max(lo, 3), hi), False
    if family == "crop-half":
        half = HALVES[int(rng.integers(4))]
        return (lambda g: crop_half(g, half)), half, (max(lo, 2), hi), False
    if family == "gravity":
        direction = GRAVITY_DIRECTIONS[int(rng.integers(4))]
        return (lambda g: gravity(g, direction)), direction, (max(lo, 3), hi), False
    raise ValueError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")


def _tiling_blocks(rng: np.random.Generator, layout: tuple[int, int], square: bool) -> tuple[int, ...]:
    """Block transforms: mostly the patterns real tasks use (mirror tilings, plain repeats, 2x2
    rotations), else random ones."""
    rows, cols = layout
    pattern = rng.choice(["mirror", "repeat", "rotation", "random"], p=[0.45, 0.1, 0.15, 0.3])
    if pattern == "repeat":
        return (0,) * (rows * cols)
    if pattern == "rotation" and square and layout == (2, 2):
        start = int(rng.integers(4))
        turn = 1 if rng.random() < 0.5 else 3  # clockwise or anticlockwise round the square
        cycle = [(start + turn * i) % 4 for i in range(4)]  # top-left, top-right, bottom-right, bottom-left
        return (cycle[0], cycle[1], cycle[3], cycle[2])
    if pattern in ("mirror", "rotation"):
        r0, c0 = int(rng.integers(2)), int(rng.integers(2))
        by_flips = {(0, 0): 0, (1, 0): 4, (0, 1): 6, (1, 1): 2}  # (left-right, up-down) -> dihedral index
        return tuple(by_flips[(c + c0) % 2, (r + r0) % 2] for r in range(rows) for c in range(cols))
    choices = tuple(range(8)) if square else SHAPE_KEEPING
    return tuple(int(rng.choice(choices)) for _ in range(rows * cols))


def generate_task(
    rng: np.random.Generator, family: str | None = None, max_side: int = MAX_INPUT_SIDE, task_id: str = "generated",
    pair_colours: float = 0.0,
) -> GeneratedTask:
    """One task of ``family`` (drawn when None): 2-4 train pairs and one test input, inputs of sides
    2..max_side. Drawn again until the checker finds the family among its explanations of the train
    pairs and the test pair is not a copy of its input.

    With probability ``pair_colours`` a task draws a pool of 3-8 colours and each pair its own few
    of them, as real tasks do (3c9b0459, 0d3d703e), and 40% of those tasks fill every cell (a model
    trained on mostly-background grids writes none of those right); otherwise every pair shares the
    task's 1-4 colours. At 0 (the default) no draw is spent on it,
    so the stream is the one every earlier model was trained on."""
    max_side = max(MIN_SIDE, min(max_side, MAX_INPUT_SIDE))
    fam = family or FAMILIES[int(rng.integers(len(FAMILIES)))]
    for _ in range(200):
        varied = pair_colours > 0 and rng.random() < pair_colours
        dense = varied and rng.random() < 0.4
        pool = tuple(int(c) for c in rng.choice(np.arange(1, 10), size=int(rng.integers(3, 9)), replace=False)) \
            if varied else None
        transform, params, (lo, hi), square = _draw_family(rng, fam, max_side, pool)
        hi = max(lo, hi)
        n_colours = int(rng.integers(1, 5))
        colours = tuple(int(c) for c in rng.choice(np.arange(1, 10), size=n_colours, replace=False))
        pairs = []
        for _ in range(int(rng.integers(3, 6))):  # 2-4 train pairs + the test pair
            h = int(rng.integers(lo, hi + 1))
            w = h if square else int(rng.integers(lo, hi + 1))
            if fam == "crop-half":
                h, w = h + h % 2, w + w % 2
            if varied:
                own = tuple(int(c) for c in rng.choice(np.asarray(pool), size=int(rng.integers(1, min(4, len(pool)) + 1)),
                                                        replace=False))
                x = random_grid(rng, h, w, own, dense)
            else:
                x = random_grid(rng, h, w, colours)
            if fam == "shift":  # keep content inside, so nothing is lost off the edge
                x = shift(shift(x, *_shift_of(params)), *(-v for v in _shift_of(params)))
            pairs.append((x, transform(x)))
        train, (test_x, test_y) = pairs[:-1], pairs[-1]
        if np.array_equal(test_x, test_y) or not test_x.any() or max(test_y.shape) > MAX_SIDE:
            continue
        if any(e.family == fam and _maps(e, test_x, test_y) for e in explain(train)):
            task = Task(task_id, tuple(Example(x, y) for x, y in train), (test_x,))
            return GeneratedTask(task, test_y, fam, params)
    raise RuntimeError(f"could not draw a {fam} task the checker recognises in 200 tries")


def _maps(explanation: Explanation, x: Grid, y: Grid) -> bool:
    """Whether the explanation maps x to y (parameters inferred from square grids can fail on others)."""
    try:
        return np.array_equal(explanation.transform(x), y)
    except ValueError:
        return False


def _shift_of(params: str) -> tuple[int, int]:
    rows, cols = params.split(", ")
    return int(rows.split()[0]), int(cols.split()[0])


def generated_tasks(seed: int, n: int, purpose: str = "train", max_side: int = MAX_INPUT_SIDE,
                    family: str | None = None, pair_colours: float = 0.0) -> list[GeneratedTask]:
    """n tasks from a seed. ``purpose`` keeps the streams apart: held-out tasks ("heldout") never
    share a generator state with training tasks ("train"), whatever the seeds."""
    stream = {"train": 0, "heldout": 1, "test": 2}[purpose]
    return [
        generate_task(np.random.default_rng([stream, seed, i]), family, max_side, task_id=f"{purpose}-{seed}-{i:05d}",
                      pair_colours=pair_colours)
        for i in range(n)
    ]


# -- task sets in Kaggle's layout (challenges + solutions JSON) -----------------------------------


def raw_task(task: Task) -> dict:
    return {"train": [{"input": grid_to_list(e.input), "output": grid_to_list(e.output)} for e in task.train],
            "test": [{"input": grid_to_list(g)} for g in task.test_inputs]}


def write_set(out: Path, challenges: dict, solutions: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "challenges.json").write_text(json.dumps(challenges, separators=(",", ":")) + "\n")
    (out / "solutions.json").write_text(json.dumps(solutions, separators=(",", ":")) + "\n")


def write_heldout(out: Path, n: int, seed: int, max_side: int) -> tuple[Path, Path]:
    """n held-out generated tasks (never a training seed) as a task set in ``out``."""
    tasks = generated_tasks(seed, n, purpose="heldout", max_side=max_side)
    write_set(out, {g.task.id: raw_task(g.task) for g in tasks}, {g.task.id: [grid_to_list(g.solution)] for g in tasks})
    return out / "challenges.json", out / "solutions.json"
