"""Selection methods side by side on one predictions file, and how they grow with more predictions.

- ``compare_methods``: per method, the competition score, pass_n (the same for every method: the
  ceiling), the mean 1-based rank of the correct grid among the method's ranking where it is
  among the candidates, and the engine seconds the method cost (judge scoring; 0 from cache).
- ``subsample_curves``: pass_n and each method's score when every test input keeps only n of its
  predictions (drawn without replacement; test inputs with fewer keep all), averaged over seeds.
- ``curves_svg``: those curves as a dependency-free SVG line plot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .metrics import evaluate
from .predictions import Prediction
from .select import JudgeScores, TestKey, as_grid, get_selector, group_by_test_input
from .submit import build_submission, rank_test_inputs, submission_from_ranked
from .tasks import Challenges


@dataclass(frozen=True)
class MethodResult:
    method: str
    score: float
    pass_n: float
    mean_rank: float | None  # of the correct grid, over the test inputs where it is a candidate
    found: int  # test inputs where the correct grid is a candidate
    test_inputs: int
    engine_seconds: float


def compare_methods(
    challenges: Challenges,
    solutions: Mapping[str, tuple[np.ndarray, ...]],
    predictions: list[Prediction],
    methods: list[str],
    judge_scores: Mapping[TestKey, JudgeScores] | None = None,
    engine_seconds: Mapping[str, float] | None = None,
) -> list[MethodResult]:
    results = []
    for name in methods:
        ranking = rank_test_inputs(challenges, predictions, get_selector(name, judge_scores))
        metrics = evaluate(solutions, submission_from_ranked(challenges, ranking), predictions)
        ranks, tests = [], 0
        for task_id, truths in solutions.items():
            if task_id not in challenges.tasks:
                continue
            for i, truth in enumerate(truths):
                tests += 1
                ranked = ranking.get((task_id, i), [])
                target = as_grid(truth.tolist())
                if target in ranked:
                    ranks.append(ranked.index(target) + 1)
        results.append(MethodResult(
            name, metrics["overall"]["score"], metrics["overall"]["pass_n"],
            float(np.mean(ranks)) if ranks else None, len(ranks), tests,
            (engine_seconds or {}).get(name, 0.0),
        ))
    return results


def format_comparison(results: list[MethodResult]) -> str:
    header = f"{'method':<12} {'score':>7} {'pass_n':>7} {'mean rank of correct':>21} {'engine s':>9}"
    lines = [header, "-" * len(header)]
    for r in results:
        rank = f"{r.mean_rank:.2f} ({r.found}/{r.test_inputs})" if r.mean_rank is not None else f"- (0/{r.test_inputs})"
        lines.append(f"{r.method:<12} {r.score:>7.3f} {r.pass_n:>7.3f} {rank:>21} {r.engine_seconds:>9.1f}")
    return "\n".join(lines)


def subsample(predictions: list[Prediction], n: int, rng: np.random.Generator) -> list[Prediction]:
    """At most n predictions of every test input, drawn without replacement."""
    kept = []
    for group in group_by_test_input(predictions).values():
        if len(group) <= n:
            kept.extend(group)
        else:
            kept.extend(group[i] for i in sorted(rng.choice(len(group), size=n, replace=False)))
    return kept


def curve_sizes(predictions: list[Prediction]) -> list[int]:
    """1, 2, 4, ... below the largest number of predictions of a test input, then that number."""
    most = max((len(g) for g in group_by_test_input(predictions).values()), default=0)
    sizes, n = [], 1
    while n < most:
        sizes.append(n)
        n *= 2
    return sizes + [most] if most else []


def subsample_curves(
    challenges: Challenges,
    solutions: Mapping[str, tuple[np.ndarray, ...]],
    predictions: list[Prediction],
    methods: list[str],
    sizes: list[int] | None = None,
    seeds: int = 5,
) -> list[dict]:
    """Rows ``{"n", "pass_n", "score": {method: mean score}}``, each a mean over ``seeds`` draws."""
    rows = []
    for n in sizes if sizes is not None else curve_sizes(predictions):
        pass_n, scores = [], {m: [] for m in methods}
        for seed in range(seeds):
            kept = subsample(predictions, n, np.random.default_rng([seed, n]))
            overall = None
            for name in methods:
                overall = evaluate(solutions, build_submission(challenges, kept, get_selector(name)), kept)["overall"]
                scores[name].append(overall["score"])
            if overall is None:  # no method to compare: pass_n alone, which no selection changes
                overall = evaluate(solutions, build_submission(challenges, kept, get_selector("vote")), kept)["overall"]
            pass_n.append(overall["pass_n"])
        rows.append({"n": n, "pass_n": float(np.mean(pass_n)),
                     "score": {m: float(np.mean(v)) for m, v in scores.items()}})
    return rows


def format_curves(rows: list[dict]) -> str:
    methods = list(rows[0]["score"]) if rows else []
    header = f"{'predictions/test':>16} {'pass_n':>7} " + " ".join(f"{m:>12}" for m in methods)
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['n']:>16} {row['pass_n']:>7.3f} " + " ".join(f"{row['score'][m]:>12.3f}" for m in methods))
    return "\n".join(lines)


_LINE_COLOURS = ("#111111", "#0074D9", "#FF4136", "#2ECC40", "#F012BE", "#FF851B")


def curves_svg(rows: list[dict], title: str = "pass_n and score against predictions per test input") -> str:
    """A line plot: x = predictions per test input (log2 axis), y = pass_n and each method's score."""
    width, height, left, right, top, bottom = 720, 420, 60, 170, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    series = [("pass_n", [r["pass_n"] for r in rows])]
    if rows:
        series += [(f"score: {m}", [r["score"][m] for r in rows]) for m in rows[0]["score"]]
    top_value = max([v for _, values in series for v in values] + [0.0])
    y_max = 1.0 if top_value > 0.5 else max(0.1, float(np.ceil(top_value * 10 + 1e-9)) / 10)
    xs = [np.log2(r["n"]) for r in rows]
    x_span = (max(xs) - min(xs)) or 1.0

    def px(x: float) -> float:
        return left + (x - min(xs)) / x_span * plot_w if xs else left

    def py(y: float) -> float:
        return top + plot_h - y / y_max * plot_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{title}</text>']
    for k in range(6):
        y = y_max * k / 5
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for r, x in zip(rows, xs):
        out.append(f'<text x="{px(x):.1f}" y="{top + plot_h + 18}" text-anchor="middle">{r["n"]}</text>')
    out.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">predictions per test input</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>')
    for k, (name, values) in enumerate(series):
        colour = _LINE_COLOURS[k % len(_LINE_COLOURS)]
        dash = ' stroke-dasharray="6 4"' if name == "pass_n" else ""
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values))
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out.extend(f'<circle cx="{px(x):.1f}" cy="{py(v):.1f}" r="3" fill="{colour}"/>' for x, v in zip(xs, values))
        ly = top + 10 + 18 * k
        out.append(f'<line x1="{left + plot_w + 12}" x2="{left + plot_w + 36}" y1="{ly}" y2="{ly}" '
                   f'stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{left + plot_w + 42}" y="{ly + 4}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
