"""Rounds, resume and faults with engine doubles; the real-vLLM versions are in test_rounds_engine.py."""

import json

import numpy as np
import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st

from conftest import SAMPLE
from doubles import OracleEngine, ScriptedEngine, SlowBeamEngine, use_fake_clock
from submission.augment import Augmentation
from submission.encoders import ENCODERS
from submission.engine import Completion, GenerationRequest
from submission.pipeline import BEAM_CHUNK_PROMPTS, run
from submission.settings import RunSettings
from submission.predictions import Prediction, read_predictions, to_prediction
from submission.rounds import Deadline, WorkItem, fit_to_time, round_items, settled
from submission.select import SELECTORS, get_selector
from submission.submit import build_submission, validate_submission
from submission.workers import share_out


def quiet(_):
    pass


class FailingEngine(OracleEngine):
    """The oracle, until its second call raises."""

    def generate(self, requests, deadline=None):
        if len(self.calls) >= 1:
            self.calls.append(len(requests))
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().generate(requests, deadline)


def test_engine_that_raises_on_its_second_call_leaves_a_full_submission(sample_challenges, sample_solutions,
                                                                         tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=16, adaptive=False)
    engine = FailingEngine(sample_challenges, sample_solutions, tokenizer, settings)
    lines = []
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, SAMPLE / "solutions.json",
                 log=lines.append)
    assert engine.calls == [80, 80]
    assert record["status"].startswith("engine failed: RuntimeError: CUDA error")
    assert sum("the engine failed (RuntimeError: CUDA error" in line for line in lines) == 1
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sample_challenges, submission) == []
    assert record["score"] == 1.0  # round 1's predictions were kept and used
    assert len(list(read_predictions(tmp_path / "predictions.jsonl"))) == 80


def test_an_engine_failure_mid_round_leaves_a_submission_of_the_chunks_that_landed(sample_challenges,
                                                                                   sample_solutions, tokenizer,
                                                                                   tmp_path):
    # The round's own submission.json is written only when it ends: the final one must be rebuilt
    # from the first chunk's predictions, not kept from before the round.
    settings = RunSettings.of(augmentations=8, chunk_prompts=40)
    engine = FailingEngine(sample_challenges, sample_solutions, tokenizer, settings)
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, SAMPLE / "solutions.json", log=quiet)
    assert engine.calls == [40, 40] and record["status"].startswith("engine failed")
    predictions = list(read_predictions(tmp_path / "predictions.jsonl"))
    answered = {(p.task_id, p.test_index) for p in predictions}
    assert len(predictions) == 40 and answered
    submission = json.loads((tmp_path / "submission.json").read_text())
    for task_id, i in answered:
        assert submission[task_id][i]["attempt_1"] == sample_solutions[task_id][i].tolist()


def test_resume_skips_recorded_work_and_completes_the_plan(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=16, adaptive=False)
    first = FailingEngine(sample_challenges, sample_solutions, tokenizer, settings)
    run(sample_challenges, first, tokenizer, tmp_path, settings, {}, log=quiet)
    second = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    record = run(sample_challenges, second, tokenizer, tmp_path, settings, {}, log=quiet)
    assert second.calls == [80]  # only round 2's views: round 1 is on file
    assert record["resumed_predictions"] == 80 and record["prompts_sent"] == 80
    keys = [p.key for p in read_predictions(tmp_path / "predictions.jsonl")]
    assert len(keys) == len(set(keys)) == 160
    third = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    run(sample_challenges, third, tokenizer, tmp_path, settings, {}, log=quiet)
    assert third.calls == []


def test_resume_refuses_other_settings(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of()
    run(sample_challenges, OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), tokenizer,
        tmp_path, settings, {}, log=quiet)
    other = RunSettings.of(encoder="code-block-minimal")
    with pytest.raises(ValueError, match="encoder='shape-row-numbers'"):
        run(sample_challenges, ScriptedEngine([]), tokenizer, tmp_path, other, {}, log=quiet)
    fresh = run(sample_challenges, ScriptedEngine([Completion("x", 1, -1.0, "stop")]), tokenizer, tmp_path, other,
                {}, log=quiet, fresh=True)
    assert fresh["resumed_predictions"] == 0 and fresh["predictions"] == 80


def test_adaptive_rounds_skip_settled_test_inputs():
    aug = [Augmentation(d) for d in range(8)] + [Augmentation(d, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9)) for d in range(8)]
    plans = {("a", 0): aug, ("b", 0): aug}
    agree = [Prediction("a", 0, str(x), 0, "", [[1]], None, -1.0, 3, "stop") for x in aug[:8]]
    split = [Prediction("b", 0, str(x), 0, "", [[i % 2]], None, -1.0, 3, "stop") for i, x in enumerate(aug[:8])]
    done = {p.key for p in agree + split}
    by_test = {("a", 0): agree, ("b", 0): split}
    assert settled(agree, 8) and not settled(split, 8) and not settled(agree[:7], 8)
    items = round_items(plans, done, by_test, 2, 8, 1, adaptive=True)
    assert {i.test_key for i in items} == {("b", 0)} and [i.view for i in items] == list(range(8, 16))
    items = round_items(plans, done, by_test, 2, 8, 1, adaptive=False)
    assert len(items) == 16 and items[0].test_key == ("b", 0)  # the split test input comes first
    assert round_items(plans, set(), {}, 1, 8, 2, adaptive=True)[0].view == 0
    assert len(round_items(plans, set(), {}, 1, 8, 2)) == 16


def test_fit_to_time_cuts_what_will_not_finish():
    items = [WorkItem("a", 0, Augmentation(d), d) for d in range(8)]
    assert fit_to_time(items, 1, None, 0.1) == items  # no throughput measured yet
    assert len(fit_to_time(items, 2, 0.5, 4.0, safety=1.0)) == 4
    assert fit_to_time(items, 1, 1.0, -5.0) == []
    deadline = Deadline.after(100, 10, start=1000.0)
    assert deadline.generation_ends() == 1090.0 and deadline.left(now=1080.0) == 10.0


def test_share_out_balances_prompt_tokens_by_task():
    requests = [GenerationRequest(tuple(range(n)), 5, group=g) for g, n in
                [("a", 100), ("a", 100), ("b", 150), ("c", 60), ("c", 50), ("d", 30)]]
    shares = share_out(requests, 2)
    assert sorted(i for s in shares for i in s) == list(range(6))
    assert {requests[i].group for i in shares[0]}.isdisjoint({requests[i].group for i in shares[1]})
    loads = [sum(len(requests[i].prompt_token_ids) for i in s) for s in shares]
    assert sorted(loads) == [230, 260]  # a (200) + d (30) against b (150) + c (110): whole tasks only
    assert share_out(requests, 3)[2] != []


completions = st.one_of(
    st.text(max_size=200),
    st.builds(lambda g: " shape: %dx%d\n" % g.shape + "\n".join(f"{i + 1} " + "".join(map(str, r))
                                                                  for i, r in enumerate(g.tolist())) + "\n",
              st.tuples(st.integers(1, 5), st.integers(1, 5)).map(lambda s: np.random.default_rng(s[0] * 7 + s[1])
                                                                   .integers(0, 10, s).astype(np.uint8))),
    st.sampled_from(["```", " shape: 3x3\n1 000\n", " shape: 1x1\n1 9\n```", "\n\n\n", " shape: 30x30\n"]),
)


@given(st.lists(st.tuples(completions, st.integers(0, 7), st.sampled_from(["stop", "length", None]),
                          st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))),
                min_size=0, max_size=40))
@hsettings(max_examples=300, deadline=None)
def test_fuzz_parsing_unaugmenting_and_selection_never_raise(sample_challenges, batch):
    predictions = []
    for text, d, finish, logprob in batch:
        for encoder in ENCODERS.values():
            p = to_prediction(encoder, "00576224", 0, Augmentation(d, (0, 3, 2, 1, 4, 5, 6, 7, 8, 9)), 0, text,
                              logprob, len(text), finish)
            assert (p.grid is None) != (p.error is None)
            predictions.append(p)
    for name in SELECTORS:
        submission = build_submission(sample_challenges, predictions, get_selector(name))
        assert validate_submission(sample_challenges, submission) == []


def test_raising_augmentations_on_a_finished_run_adds_only_the_new_views(sample_challenges, sample_solutions,
                                                                         tokenizer, tmp_path):
    from submission.augment import plan_augmentations

    task = sample_challenges.tasks["e345f17b"]
    assert plan_augmentations(task, 1, 24, seed=3)[:12] == plan_augmentations(task, 1, 12, seed=3)  # prefix-stable
    small, large = RunSettings.of(augmentations=8), RunSettings.of(augmentations=16, adaptive=False)
    run(sample_challenges, OracleEngine(sample_challenges, sample_solutions, tokenizer, small), tokenizer,
        tmp_path, small, {}, log=quiet)
    more = OracleEngine(sample_challenges, sample_solutions, tokenizer, large)
    record = run(sample_challenges, more, tokenizer, tmp_path, large, {}, log=quiet)
    assert more.calls == [80] and record["resumed_predictions"] == 80
    keys = [p.key for p in read_predictions(tmp_path / "predictions.jsonl")]
    assert len(keys) == len(set(keys)) == 160


BEAM_ANSWER = Completion(" shape: 1x1\n1 5\n", 8, -1.0, "stop")


def test_beam_mode_sends_calls_of_at_most_beam_chunk_prompts(sample_challenges, tokenizer, tmp_path):
    engine = SlowBeamEngine([BEAM_ANSWER])
    settings = RunSettings.of(mode="beam", beam_width=3, time_budget=None)
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=quiet)
    assert BEAM_CHUNK_PROMPTS == 64 and engine.calls == [64, 16]
    assert record["status"] == "done" and record["predictions"] == 80 * 3


def test_beam_mode_starts_no_call_that_the_measured_speed_says_will_overrun(sample_challenges, tokenizer, tmp_path,
                                                                            monkeypatch):
    # 8 prompts per call at 25 ms each: 0.2 s per call, which cannot be aborted. Of a 0.9 s
    # budget, 4 calls fit; a fifth would start with 0.1 s left and end past the budget. Time passes
    # only while the engine works (a fake clock), so the count is exact however busy the machine is.
    from submission import pipeline, rounds

    clock = use_fake_clock(monkeypatch, pipeline, rounds)
    engine = SlowBeamEngine([BEAM_ANSWER], seconds_per_prompt=0.025, clock=clock)
    settings = RunSettings.of(mode="beam", beam_width=2, chunk_prompts=8, time_budget=0.9, reserve_seconds=0)
    lines = []
    started = clock.monotonic()
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lines.append, started=started)
    assert record["status"] == "time budget reached"
    assert engine.calls == [8, 8, 8, 8]
    assert engine.spans[-1][1] == pytest.approx(started + 0.8)  # the last call ended inside the budget
    assert record["predictions"] == 4 * 8 * 2 == len(list(read_predictions(tmp_path / "predictions.jsonl")))
    assert record["rounds"][0]["unfinished"] == 80 - 8 * 4
    assert any(line.startswith("round 1: cut by the time budget") for line in lines)
