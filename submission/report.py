"""A self-contained HTML report of a run: every task, its predictions and what was chosen.

One file, no network: inline CSS, the data as embedded JSON, and a small inline script that
draws each task's grids on canvases in the ARC palette when the task scrolls into view (so 400
tasks open fast). The summary and the index of all tasks are plain HTML. Per task: the train
pairs, each test input, its true output when known, the two attempts, and the top candidates of
the chosen selection method with their votes, mean log-prob per token and judge score.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping

import numpy as np
import orjson

from .metrics import evaluate
from .predictions import Prediction
from .select import JudgeScores, TestKey, as_grid, candidates, get_selector, group_by_test_input, judge_totals
from .submit import rank_test_inputs, submission_from_ranked, write_bytes_atomic
from .tasks import Challenges

SORT_KEYS = ("score", "pass_n", "agreement", "parsed", "task")
TOP_CANDIDATES = 6
# The ARC palette, colours 0-9.
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
           "#870C25")


def _rows(grid) -> list[str]:
    """A grid as one digit string per row: compact in the embedded JSON."""
    return ["".join(str(int(v)) for v in row) for row in np.asarray(grid).tolist()]


def task_entries(
    challenges: Challenges,
    predictions: list[Prediction],
    solutions: Mapping[str, tuple[np.ndarray, ...]] | None,
    selector: str,
    judge_scores: Mapping[TestKey, JudgeScores] | None,
) -> list[dict]:
    """The report's data: one entry per task of the challenges file."""
    ranked = rank_test_inputs(challenges, predictions, get_selector(selector, judge_scores))
    submission = submission_from_ranked(challenges, ranked)
    groups = group_by_test_input(predictions)
    per_task = {}
    if solutions:
        per_task = {t["task_id"]: t for t in evaluate(solutions, submission, predictions)["tasks"]}
    entries = []
    for task_id in challenges.test_counts:
        task = challenges.tasks.get(task_id)
        truths = solutions.get(task_id) if solutions else None
        tests, agreement, n_preds, n_parsed = [], [], 0, 0
        for i in range(challenges.test_counts.get(task_id, 0)):
            group = groups.get((task_id, i), [])
            n_preds += len(group)
            parsed = sum(p.grid is not None for p in group)
            n_parsed += parsed
            votes = {c.grid: c for c in candidates(group)}
            agreement.append(max((c.votes for c in votes.values()), default=0) / parsed if parsed else 0.0)
            totals = judge_totals((judge_scores or {}).get((task_id, i)))
            truth = as_grid(truths[i].tolist()) if truths is not None and i < len(truths) else None
            attempts = submission[task_id][i]
            tests.append({
                "input": _rows(task.test_inputs[i]) if task is not None else None,
                "truth": _rows(truth) if truth is not None else None,
                "attempts": [
                    {"grid": _rows(attempts[k]), "correct": truth is not None and as_grid(attempts[k]) == truth}
                    for k in ("attempt_1", "attempt_2")
                ],
                "candidates": [
                    {"grid": _rows(g), "votes": votes[g].votes,
                     "logprob": None if votes[g].mean_logprob is None else round(votes[g].mean_logprob, 4),
                     "judge": round(totals[g], 3) if g in totals else None,
                     "correct": truth is not None and g == truth}
                    for g in ranked.get((task_id, i), [])[:TOP_CANDIDATES]
                ],
                "predictions": len(group),
                "parsed": parsed,
            })
        metrics = per_task.get(task_id)
        entries.append({
            "id": task_id,
            "bad": task is None,
            "train": [[_rows(ex.input), _rows(ex.output)] for ex in task.train] if task is not None else [],
            "tests": tests,
            "score": metrics["score"] if metrics else None,
            "pass_n": metrics["pass_n"] if metrics else None,
            "agreement": float(np.mean(agreement)) if agreement else 0.0,
            "parsed": n_parsed / n_preds if n_preds else 0.0,
            "predictions": n_preds,
        })
    return entries


def sort_entries(entries: list[dict], key: str, best_first: bool = False) -> list[dict]:
    """Worst first by default; tasks without the metric (no solutions) go last, then by id."""
    if key not in SORT_KEYS:
        raise ValueError(f"unknown sort key {key!r}; choose from {', '.join(SORT_KEYS)}")
    if key == "task":
        return sorted(entries, key=lambda e: e["id"], reverse=best_first)
    sign = -1 if best_first else 1
    return sorted(entries, key=lambda e: (e[key] is None, sign * (e[key] or 0.0), e["id"]))


def _summary(entries: list[dict], selector: str, sort_by: str, has_judge: bool) -> dict:
    scored = [e for e in entries if e["score"] is not None]
    n_preds = sum(e["predictions"] for e in entries)
    n_parsed = sum(t["parsed"] for e in entries for t in e["tests"])
    return {
        "tasks": len(entries),
        "test_inputs": sum(len(e["tests"]) for e in entries),
        "predictions": n_preds,
        "parsed": n_parsed / n_preds if n_preds else 0.0,
        "score": float(np.mean([e["score"] for e in scored])) if scored else None,
        "pass_n": float(np.mean([e["pass_n"] for e in scored])) if scored else None,
        "selector": selector,
        "sort_by": sort_by,
        "judge": has_judge,
    }


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def build_report(
    challenges: Challenges,
    predictions: list[Prediction],
    solutions: Mapping[str, tuple[np.ndarray, ...]] | None = None,
    selector: str = "vote",
    judge_scores: Mapping[TestKey, JudgeScores] | None = None,
    sort_by: str = "score",
    best_first: bool = False,
    title: str = "ARC run report",
) -> str:
    if not solutions and sort_by in ("score", "pass_n"):
        sort_by = "agreement"  # no solutions, no score: the least agreed-upon tasks first instead
    entries = sort_entries(task_entries(challenges, predictions, solutions, selector, judge_scores), sort_by,
                           best_first)
    summary = _summary(entries, selector, sort_by, bool(judge_scores))
    index_rows = "\n".join(
        f'<tr><td><a href="#task-{html.escape(e["id"])}">{html.escape(e["id"])}</a></td>'
        f'<td>{_fmt(e["score"])}</td><td>{_fmt(e["pass_n"])}</td><td>{_fmt(e["agreement"])}</td>'
        f'<td>{_fmt(e["parsed"])}</td><td>{e["predictions"]}</td></tr>'
        for e in entries
    )
    data = orjson.dumps({"summary": summary, "palette": PALETTE, "tasks": entries}).decode()
    data = data.replace("</", "<\\/")  # nothing in the JSON may close the script element
    s = summary
    facts = [
        ("tasks", s["tasks"]), ("test inputs", s["test_inputs"]), ("predictions", s["predictions"]),
        ("parsed", _fmt(s["parsed"])), ("score", _fmt(s["score"])), ("pass_n", _fmt(s["pass_n"])),
        ("selection", s["selector"] + (" (judge scores)" if s["judge"] else "")),
        ("sorted by", f"{sort_by}, {'best' if best_first else 'worst'} first"),
    ]
    summary_html = "".join(f"<div><b>{html.escape(str(v))}</b><span>{html.escape(k)}</span></div>" for k, v in facts)
    return _TEMPLATE.format(
        title=html.escape(title), summary=summary_html, index_rows=index_rows, data=data,
        sort_options="".join(f'<option value="{k}"{" selected" if k == sort_by else ""}>{k}</option>'
                             for k in SORT_KEYS),
        best_checked=" checked" if best_first else "",
        script=_SCRIPT,
    )


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; background: #fafafa; }}
h1 {{ font-size: 20px; margin: 0 0 10px; }}
.summary {{ display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 12px; }}
.summary div {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 6px 12px; }}
.summary b {{ display: block; font-size: 17px; }} .summary span {{ color: #666; }}
details {{ margin-bottom: 12px; }}
table.index {{ border-collapse: collapse; }} .index td, .index th {{ padding: 1px 10px; text-align: right; }}
.index td:first-child {{ text-align: left; font-family: monospace; }}
.task {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 10px 0; padding: 8px 12px;
         min-height: 90px; }}
.task h2 {{ font-size: 15px; margin: 0 0 6px; font-family: monospace; }}
.task h2 small {{ font-family: system-ui, sans-serif; font-weight: normal; color: #666; margin-left: 10px; }}
.row {{ display: flex; flex-wrap: wrap; gap: 14px; align-items: flex-start; margin: 6px 0; }}
.pair, .cell {{ display: flex; flex-direction: column; align-items: center; gap: 2px; }}
.pair .grids {{ display: flex; gap: 4px; align-items: center; }}
.label {{ color: #555; font-size: 11px; text-align: center; }}
.ok {{ outline: 3px solid #2ECC40; }} .bad {{ outline: 3px solid #FF4136; }}
.section {{ color: #888; font-size: 11px; text-transform: uppercase; margin-top: 6px; }}
canvas {{ image-rendering: pixelated; }}
</style></head><body>
<h1>{title}</h1>
<div class="summary">{summary}</div>
<details><summary>Index of all tasks</summary>
<table class="index"><thead><tr><th>task</th><th>score</th><th>pass_n</th><th>agreement</th><th>parsed</th>
<th>predictions</th></tr></thead><tbody>
{index_rows}
</tbody></table></details>
<div>Sort by <select id="sort">{sort_options}</select> <label><input type="checkbox" id="best"{best_checked}> best first</label></div>
<div id="tasks"></div>
<script type="application/json" id="data">{data}</script>
<script>{script}</script>
</body></html>
"""

_SCRIPT = r"""
"use strict";
const DATA = JSON.parse(document.getElementById("data").textContent);
const PALETTE = DATA.palette;
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function grid(rows, maxPx) {
  const c = document.createElement("canvas");
  if (!rows || !rows.length) return c;
  const h = rows.length, w = rows[0].length;
  const s = Math.max(2, Math.min(16, Math.floor(maxPx / Math.max(h, w))));
  const gap = s >= 6 ? 1 : 0;
  c.width = w * s + gap; c.height = h * s + gap;
  const g = c.getContext("2d");
  g.fillStyle = "#555"; g.fillRect(0, 0, c.width, c.height);
  for (let r = 0; r < h; r++) for (let k = 0; k < w; k++) {
    g.fillStyle = PALETTE[rows[r].charCodeAt(k) - 48];
    g.fillRect(k * s + gap, r * s + gap, s - gap, s - gap);
  }
  return c;
}
function labelled(rows, label, cls, maxPx) {
  const d = el("div", "cell");
  const c = grid(rows, maxPx);
  if (cls) c.className = cls;
  d.append(c, el("div", "label", label));
  return d;
}
function fmt(v, digits) { return v === null || v === undefined ? "-" : v.toFixed(digits); }
function fillTask(t, body) {
  body.append(el("div", "section", "train"));
  const train = el("div", "row");
  t.train.forEach((p, i) => {
    const d = el("div", "pair"), g = el("div", "grids");
    g.append(grid(p[0], 90), el("span", "", "\u2192"), grid(p[1], 90));
    d.append(g, el("div", "label", "example " + (i + 1)));
    train.append(d);
  });
  body.append(train);
  t.tests.forEach((x, i) => {
    body.append(el("div", "section", "test " + i + ": " + x.parsed + "/" + x.predictions + " predictions parsed"));
    const row = el("div", "row");
    if (x.input) row.append(labelled(x.input, "input", "", 120));
    if (x.truth) row.append(labelled(x.truth, "true output", "", 120));
    x.attempts.forEach((a, k) => row.append(labelled(a.grid, "attempt " + (k + 1) + (a.correct ? " \u2713" : ""),
                                                     x.truth ? (a.correct ? "ok" : "bad") : "", 120)));
    body.append(row);
    if (x.candidates.length) {
      const cands = el("div", "row");
      x.candidates.forEach((c, k) => cands.append(labelled(c.grid,
        "#" + (k + 1) + " votes " + c.votes + ", lp/tok " + fmt(c.logprob, 3) +
        (c.judge !== null ? ", judge " + fmt(c.judge, 1) : "") + (c.correct ? " \u2713" : ""),
        c.correct ? "ok" : "", 80)));
      body.append(el("div", "section", "top candidates"), cands);
    }
  });
}
const cards = new Map();
function card(t) {
  const d = el("div", "task");
  d.id = "task-" + t.id;
  const h = el("h2", "", t.id);
  h.append(el("small", "", "score " + fmt(t.score, 3) + " \u00b7 pass_n " + fmt(t.pass_n, 3) + " \u00b7 agreement " +
    fmt(t.agreement, 2) + " \u00b7 parsed " + fmt(t.parsed, 2) + " \u00b7 " + t.predictions + " predictions" +
    (t.bad ? " \u00b7 unreadable task" : "")));
  d.append(h);
  d.dataset.filled = "";
  cards.set(d, t);
  return d;
}
function fill(d) {
  if (d.dataset.filled) return;
  d.dataset.filled = "1";
  const body = el("div");
  fillTask(cards.get(d), body);
  d.append(body);
}
const container = document.getElementById("tasks");
const observer = "IntersectionObserver" in window ? new IntersectionObserver(entries => {
  for (const e of entries) if (e.isIntersecting) { fill(e.target); observer.unobserve(e.target); }
}, {rootMargin: "800px"}) : null;
function show(tasks) {
  container.textContent = "";
  tasks.forEach((t, i) => {
    const d = card(t);
    container.append(d);
    if (i < 6 || !observer) fill(d); else observer.observe(d);
  });
}
function resort() {
  const key = document.getElementById("sort").value, best = document.getElementById("best").checked;
  const tasks = DATA.tasks.slice();
  if (key === "task") tasks.sort((a, b) => (a.id < b.id ? -1 : 1) * (best ? -1 : 1));
  else tasks.sort((a, b) => ((a[key] === null) - (b[key] === null)) ||
                            ((best ? -1 : 1) * ((a[key] || 0) - (b[key] || 0))) || (a.id < b.id ? -1 : 1));
  show(tasks);
}
document.getElementById("sort").addEventListener("change", resort);
document.getElementById("best").addEventListener("change", resort);
show(DATA.tasks);
"""
