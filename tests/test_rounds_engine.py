"""Time budget, resume after SIGTERM/SIGKILL, data-parallel workers and start-up retry, through real vLLM."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import psutil
import pytest

from conftest import EAGER, ROOT, SAMPLE
from submission.engine import EngineSettings, start_engine
from submission.pipeline import plan_work, run
from submission.settings import RunSettings
from submission.predictions import read_predictions
from submission.submit import validate_submission

pytestmark = pytest.mark.engine


def quiet(_):
    pass


def load(path):
    return json.loads(path.read_text())


def test_a_budget_too_small_for_all_rounds_ends_before_its_deadline(vllm_engine, tokenizer, sample_challenges,
                                                                     tmp_path):
    # Rounds of 24 views x 10 test inputs, long enough (~3 s on 2 cores) that a pause of the shared
    # CI cores is small beside them: rounds of 80 short prompts took 0.3 s, and one such pause cut round 1.
    views, test_inputs = 24, 10
    one_round = RunSettings.of(augmentations=views, views_per_round=views, max_tokens=256, time_budget=None)
    timings = []
    for attempt in range(2):  # the faster of two: the first may include warm-up
        t0 = time.monotonic()
        run(sample_challenges, vllm_engine, tokenizer, tmp_path / f"calibrate{attempt}", one_round, {}, log=quiet)
        timings.append(time.monotonic() - t0)

    budget = 2.0 * min(timings)  # two thirds of what three rounds need: round 1 fits, round 3 does not
    settings = RunSettings.of(augmentations=3 * views, views_per_round=views, max_tokens=256, adaptive=False,
                           time_budget=budget, reserve_seconds=0)
    lines = []
    t0 = time.monotonic()
    record = run(sample_challenges, vllm_engine, tokenizer, tmp_path / "run", settings, {}, log=lines.append)
    elapsed = time.monotonic() - t0
    assert elapsed < budget + 15  # a generous margin: abort in flight, final selection and writes
    assert record["status"] == "time budget reached", (timings, budget, elapsed, record["rounds"])
    done = sum(r["prompts"] - r["unfinished"] for r in record["rounds"])
    per_round = views * test_inputs
    assert per_round <= done < 3 * per_round, (timings, budget, record["rounds"])  # round 1 whole, not all
    assert record["predictions"] == done
    assert any("cut by the time budget" in line or "skipped" in line for line in lines)
    submission = load(tmp_path / "run" / "submission.json")
    assert validate_submission(sample_challenges, submission) == []


def _cli(out, *extra):
    return [sys.executable, "-m", "submission", "run", "--challenges", str(SAMPLE / "challenges.json"),
            "--model", str(out.parent / "model"), "--out", str(out), "--augmentations", "16", "--no-adaptive",
            "--chunk-prompts", "8", "--max-tokens", "24", "--enforce-eager", *extra]


def _lines(path):
    return sum(1 for _ in open(path, "rb")) if path.exists() else 0


def _processes_in_group(group: int) -> list[int]:
    alive = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == group and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    return alive


def _start_and_signal(command, predictions, at_least, sig, log_path):
    """Run ``command``, send ``sig`` to its main process alone once ``at_least`` predictions are
    written, and wait until every process it started has ended: after SIGTERM the run closes its
    engine; after SIGKILL the engine's watchdog stops vLLM's processes (engine.py)."""
    with open(log_path, "w") as log:  # a file, not a pipe: vLLM's logging must never block on a full pipe
        # its own session: the processes left behind are those of its process group
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while _lines(predictions) < at_least and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert process.poll() is None, "the run ended before it could be interrupted"
            process.send_signal(sig)
            process.wait(timeout=300)
            deadline = time.monotonic() + 30
            while _processes_in_group(process.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            left = _processes_in_group(process.pid)
            assert not left, f"{len(left)} processes of the run still alive 30 s after its {sig.name}"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return process.returncode, log_path.read_text()


def test_sigterm_then_sigkill_then_an_unbudgeted_resume_does_each_work_item_once(vllm_engine, tokenizer,
                                                                                 tiny_model_dir, sample_challenges,
                                                                                 tmp_path):
    (tmp_path / "model").symlink_to(tiny_model_dir)
    out = tmp_path / "run"
    predictions = out / "predictions.jsonl"
    expected = {(i.task_id, i.test_index, str(i.augmentation), 0)
                for i in plan_work(sample_challenges.tasks, RunSettings.of(augmentations=16))}
    assert len(expected) == 160

    code, output = _start_and_signal(_cli(out), predictions, 16, signal.SIGTERM, tmp_path / "term.log")
    assert code == 3, output[-2000:]
    assert output.count("SIGTERM received") == 1
    assert load(out / "run.json")["status"] == "stopped by SIGTERM"
    assert validate_submission(sample_challenges, load(out / "submission.json")) == []
    after_term = _lines(predictions)

    code, _ = _start_and_signal(_cli(out), predictions, after_term + 16, signal.SIGKILL, tmp_path / "kill.log")
    assert code == -signal.SIGKILL
    before_last = _lines(predictions)
    assert after_term < before_last < 160

    # The resume has no time budget (not a setting a resume must share): every round runs, both here.
    # It runs in this process on the session's engine (same model, same settings as _cli's): the two
    # runs above are the processes a signal needs; a third would only add an engine start.
    settings = RunSettings.of(augmentations=16, adaptive=False, chunk_prompts=8, max_tokens=24, time_budget=None)
    run(sample_challenges, vllm_engine, tokenizer, out, settings, {"model": str(out.parent / "model")}, log=quiet)
    record = load(out / "run.json")
    assert record["status"] == "done" and record["settings"]["budget"]["time_budget"] is None
    rounds = [r["round"] for r in record["rounds"]]
    assert rounds == ([1, 2] if before_last < 80 else [2]) and record["predictions"] == 160
    assert record["resumed_predictions"] == before_last
    assert record["prompts_sent"] == 160 - before_last  # nothing recorded was generated again
    keys = [p.key for p in read_predictions(predictions)]
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert validate_submission(sample_challenges, load(out / "submission.json")) == []


def test_start_up_out_of_memory_is_retried_once_with_a_smaller_context(tiny_model_dir, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    lines = []
    # 3 MiB of KV cache holds ~6000 tokens of the tiny model: not its 8192 context, but half of it
    engine = start_engine(EngineSettings(str(tiny_model_dir), kv_cache_bytes=3 * 2**20, enforce_eager=EAGER),
                          log=lines.append)
    try:
        assert engine.max_model_len == 4096
        assert sum(line.startswith("engine: start-up failed") for line in lines) == 1
        assert "retrying once with context 4096" in lines[0]
    finally:
        engine.close()


def test_two_workers_one_killed_mid_run_make_the_work_items_one_engine_makes(vllm_engine, tokenizer, tiny_model_dir,
                                                                             sample_challenges, tmp_path):
    """One run of two engine processes (what --workers 2 starts on two GPUs), one of them killed after the
    first chunk: the other takes its work over, and the run records exactly the work items of one engine."""
    import psutil

    # 160 prompts, about 20 s of generation: the kill after the first chunk has most of the run to land
    # in (with 80, a run under make test's load once ended before the kill reached a worker)
    settings = RunSettings.of(augmentations=16, max_tokens=16, adaptive=False, time_budget=None)
    run(sample_challenges, vllm_engine, tokenizer, tmp_path / "one", settings, {}, log=quiet)
    one = [p.key for p in read_predictions(tmp_path / "one" / "predictions.jsonl")]

    (tmp_path / "model").symlink_to(tiny_model_dir)
    out = tmp_path / "two"
    command = [sys.executable, "-m", "submission", "run", "--challenges", str(SAMPLE / "challenges.json"),
               "--model", str(tmp_path / "model"), "--out", str(out), "--augmentations", "16", "--max-tokens", "16",
               "--no-adaptive", "--chunk-prompts", "8", "--workers", "2", "--cpu-kv-cache-gib", "0.5", "--time-budget", "0",
               "--enforce-eager"]
    with open(tmp_path / "log", "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            predictions, deadline = out / "predictions.jsonl", time.monotonic() + 600
            while _lines(predictions) < 8 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert process.poll() is None, "the run ended before a worker could be killed"
            killed_at = _lines(predictions)
            # the pool's workers are the run's direct children (multiprocessing spawn)
            workers = [p for p in psutil.Process(process.pid).children() if "spawn_main" in " ".join(p.cmdline())]
            assert len(workers) == 2
            for p in workers[0].children(recursive=True) + [workers[0]]:
                p.kill()
            process.wait(timeout=600)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    text = (tmp_path / "log").read_text()
    assert process.returncode == 0, text[-3000:]
    assert "2 workers ready" in text
    # killed mid-generation it "died"; killed between two chunks, the next send finds it "is gone"
    engine_lines = "\n".join(line for line in text.splitlines() if line.startswith(("engine:", "round")))
    assert re.search(r"engine: worker \d (died|is gone)", text) and "sending them again" in text, \
        f"killed with {killed_at} predictions written\n{engine_lines}"
    record = load(out / "run.json")
    assert record["status"] == "done" and record["predictions"] == 160
    assert record["engine"]["engine"] == "vllm-pool" and record["engine"]["workers"] == 2
    # each worker process read the FlashInfer sampler's variable itself (engine.engine_environment), vLLM too
    assert [w["environment"] for w in record["engine"]["each"]] == [
        {"VLLM_USE_FLASHINFER_SAMPLER": "0", "set_by": "bundle", "vllm_reads": False}] * 2
    two = [p.key for p in read_predictions(predictions)]
    assert len(two) == len(set(two)) == len(one) == 160
    assert set(two) == set(one)
    assert validate_submission(sample_challenges, load(out / "submission.json")) == []

