"""The HTML report: its data, its task list, and what a real headless browser (Debian's chromium) shows."""

import json
import re
import shutil
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from conftest import ROOT, SAMPLE
from submission.predictions import Prediction, append_predictions
from submission.select import as_grid
from submission.report import PALETTE, build_report, sort_entries, task_entries
from submission.tasks import Challenges

CHROMIUM = shutil.which("chromium")


def sample_predictions(challenges, solutions, skip=("0c786b71",)):
    """Per test input: the truth twice, a one-cell change, and a parse error; none for ``skip``."""
    preds = []
    for task_id, truths in solutions.items():
        if task_id in skip:
            continue
        for i, truth in enumerate(truths):
            wrong = truth.copy()
            wrong[0, 0] = (wrong[0, 0] + 1) % 10
            grids = [wrong, wrong, truth, None] if task_id == "e345f17b" else [truth, truth, wrong, None]
            for s, grid in enumerate(grids):
                preds.append(Prediction(task_id, i, f"d{s}", 0, "", None if grid is None else grid.tolist(),
                                        None if grid is not None else "parse error: x", -1.0 - s, 10, "stop"))
    return preds


def embedded_data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    return json.loads(match.group(1).replace("<\\/", "</"))


def chromium(*args, timeout=120):
    assert CHROMIUM, ("Debian's chromium is not installed: `sudo apt-get install chromium` (make test installs it when "
                      "run as root)")
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           *args], capture_output=True, timeout=timeout)


def read_png(path) -> np.ndarray:
    """RGB(A) pixels of an 8-bit, non-interlaced PNG (what chromium writes), decoded with zlib."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    channels = 3 if colour_type == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        up = out[y - 1] if y else np.zeros_like(line)
        if kind == 0:
            out[y] = line
        elif kind == 2:
            out[y] = (line + up) % 256
        else:  # Sub, Average, Paeth depend on the pixel to the left: go byte by byte
            row = np.zeros_like(line)
            for x in range(len(line)):
                left = row[x - channels] if x >= channels else 0
                corner = up[x - channels] if x >= channels else 0
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + up[x]) // 2
                else:
                    p = left + up[x] - corner
                    pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - corner)
                    predictor = left if pa <= pb and pa <= pc else (up[x] if pb <= pc else corner)
                row[x] = (line[x] + predictor) % 256
            out[y] = row
    return out.reshape(height, width, channels)[:, :, :3].astype(np.uint8)


def test_entries_hold_every_task_and_sort_worst_first(sample_challenges, sample_solutions):
    preds = sample_predictions(sample_challenges, sample_solutions)
    entries = task_entries(sample_challenges, preds, sample_solutions, "vote", None)
    assert [e["id"] for e in entries] == list(sample_challenges.test_counts)
    by_id = {e["id"]: e for e in entries}
    assert by_id["0c786b71"]["predictions"] == 0 and by_id["0c786b71"]["score"] == 0.0
    assert by_id["e345f17b"]["score"] == 1.0  # the truth is the vote's second choice: attempt_2
    test = by_id["e345f17b"]["tests"][0]
    assert [a["correct"] for a in test["attempts"]] == [False, True]
    assert [(c["votes"], c["correct"]) for c in test["candidates"]] == [(2, False), (1, True)]
    truth = sample_solutions["66e6c45b"][0]
    assert by_id["66e6c45b"]["tests"][0]["truth"] == ["".join(map(str, row)) for row in truth.tolist()]
    assert by_id["66e6c45b"]["agreement"] == pytest.approx(2 / 3) and by_id["66e6c45b"]["parsed"] == 0.75
    assert [e["id"] for e in sort_entries(entries, "score")][:1] == ["0c786b71"]
    assert [e["id"] for e in sort_entries(entries, "score", best_first=True)][-1] == "0c786b71"
    assert [e["id"] for e in sort_entries(entries, "task")] == sorted(by_id)
    without_solutions = embedded_data(build_report(sample_challenges, preds))
    assert without_solutions["summary"]["sort_by"] == "agreement" and without_solutions["summary"]["score"] is None
    assert all(t["tests"][0]["truth"] is None for t in without_solutions["tasks"])
    judged_truth = as_grid(sample_solutions["e345f17b"][0].tolist())
    judge_scores = {("e345f17b", 0): {judged_truth: {"d0": -1.0}}}  # only the truth is judged: it goes first
    judged = {e["id"]: e for e in task_entries(sample_challenges, preds, sample_solutions, "judge", judge_scores)}
    test = judged["e345f17b"]["tests"][0]  # the shown attempts and candidates follow the chosen method
    assert [a["correct"] for a in test["attempts"]] == [True, False]
    assert [(c["votes"], c["correct"], c["judge"]) for c in test["candidates"]] == [(1, True, -1.0), (2, False, None)]


def test_a_copy_of_the_test_input_is_shown_last_among_the_candidates(sample_challenges, sample_solutions):
    copy, truth = sample_challenges.tasks["66e6c45b"].test_inputs[0], sample_solutions["66e6c45b"][0]
    preds = [Prediction("66e6c45b", 0, f"d{s}", 0, "", grid.tolist(), None, -1.0, 10, "stop")
             for s, grid in enumerate([copy, copy, truth])]
    test = {e["id"]: e for e in task_entries(sample_challenges, preds, sample_solutions, "vote", None)}["66e6c45b"]
    assert [(c["votes"], c["correct"]) for c in test["tests"][0]["candidates"]] == [(1, True), (2, False)]
    assert [a["correct"] for a in test["tests"][0]["attempts"]] == [True, False]


def test_report_opens_in_headless_chromium_and_shows_every_task(sample_challenges, sample_solutions, tmp_path):
    preds = sample_predictions(sample_challenges, sample_solutions)
    append_predictions(tmp_path / "predictions.jsonl", preds)
    report = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "submission", "report", "--challenges", str(SAMPLE / "challenges.json"),
         "--solutions", str(SAMPLE / "solutions.json"), "--predictions", str(tmp_path / "predictions.jsonl"),
         "--out", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    page = report.read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch: opens offline
    data = embedded_data(page)
    task_ids = set(sample_challenges.test_counts)
    assert {t["id"] for t in data["tasks"]} == task_ids == {p.task_id for p in preds} | {"0c786b71"}
    assert data["tasks"][0]["id"] == "0c786b71"  # worst score first
    assert all(f'href="#task-{t}"' in page for t in task_ids)  # the index lists every task

    dom = chromium("--virtual-time-budget=3000", "--dump-dom", report.as_uri()).stdout.decode()
    cards = re.findall(r'<div class="task" id="task-([0-9a-f]+)"', dom)
    assert sorted(cards) == sorted(task_ids)  # the script ran and built a card per task
    assert dom.count("<canvas") >= 3 * 6  # the first cards are drawn at once

    shot = tmp_path / "shot.png"
    chromium(f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,900",
             "--virtual-time-budget=3000", report.as_uri())
    pixels = read_png(shot)
    assert pixels.shape == (900, 1200, 3)
    non_white = (pixels.min(axis=2) < 235).mean()
    colours = {tuple(int(PALETTE[c][k : k + 2], 16) for k in (1, 3, 5)) for c in range(1, 10)}
    seen = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    print(f"\nscreenshot: {non_white:.1%} non-white, ARC colours seen: {len(colours & seen)} of 9")
    assert non_white > 0.08  # not a blank page (measured: 13% with the grids, 5% without them)
    assert len(colours & seen) >= 6  # grids drawn in the ARC palette (8 seen; the page's own outlines use 2)


def test_a_400_task_report_stays_light(sample_challenges, sample_solutions, tmp_path):
    """400 tasks (the evaluation set's size): the page holds them all, but draws only what is in view."""
    tasks, counts, solutions, preds = {}, {}, {}, []
    base = sample_predictions(sample_challenges, sample_solutions, skip=())
    for k in range(50):
        for task_id, task in sample_challenges.tasks.items():
            new_id = f"{k:02d}{task_id[2:]}"
            tasks[new_id], counts[new_id] = task, sample_challenges.test_counts[task_id]
            solutions[new_id] = sample_solutions[task_id]
    for new_id in tasks:
        preds += [Prediction(new_id, p.test_index, f"{p.augmentation}-{s}", p.sample, p.text, p.grid, p.error,
                             p.cumulative_logprob, p.token_count, p.finish_reason)
                  for p in base if p.task_id[2:] == new_id[2:] for s in range(4)]
    challenges = Challenges(tasks, (), counts)
    assert len(tasks) == 400
    started = time.perf_counter()
    page = build_report(challenges, preds, solutions)
    built = time.perf_counter() - started
    report = tmp_path / "report.html"
    report.write_text(page)
    started = time.perf_counter()
    dom = chromium("--virtual-time-budget=3000", "--dump-dom", report.as_uri()).stdout.decode()
    opened = time.perf_counter() - started
    print(f"\n400 tasks, {len(preds)} predictions: {len(page) / 1e6:.2f} MB, built in {built:.2f}s, "
          f"chromium loaded and dumped it in {opened:.1f}s, {dom.count('<canvas')} canvases drawn")
    assert len(re.findall(r'<div class="task" id="task-', dom)) == 400
    assert 0 < dom.count("<canvas") < 400  # lazily drawn: far fewer canvases than the ~4000 grids
    assert len(page) < 8_000_000
