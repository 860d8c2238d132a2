"""The whole pipeline with engine doubles: files, counts, and scores that only correct inversion gives."""

import json

import numpy as np
import orjson
import pytest

from conftest import SAMPLE
from doubles import OracleEngine, ScriptedEngine
from submission.cli import main
from submission.encoders import get_encoder
from submission.engine import Completion
from submission.pipeline import run
from submission.settings import RunSettings
from submission.predictions import read_predictions
from submission.prompts import answer_vocabulary
from submission.submit import validate_submission
from submission.tasks import load_challenges


def run_with(engine, challenges, tokenizer, out, settings, solutions=True):
    return run(challenges, engine, tokenizer, out, settings, {"test": True},
               SAMPLE / "solutions.json" if solutions else None, log=lambda _: None)


@pytest.mark.parametrize("augmentations, adaptive, calls", [
    (8, True, [80]),
    (12, False, [80, 40]),  # round 1: the 8 dihedral views of all 10 test inputs; round 2: 4 more each
    (12, True, [80]),  # the oracle is unanimous after round 1, so every test input is settled
])
def test_oracle_in_the_augmented_space_scores_exactly_one(sample_challenges, sample_solutions, tokenizer, tmp_path,
                                                           augmentations, adaptive, calls):
    settings = RunSettings.of(augmentations=augmentations, adaptive=adaptive)
    engine = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    record = run_with(engine, sample_challenges, tokenizer, tmp_path, settings)
    assert engine.calls == calls  # every prompt of a round in one engine call
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["overall"]["score"] == 1.0
    assert metrics["overall"]["pass_n"] == 1.0 and metrics["overall"]["accuracy"] == 1.0
    assert metrics["overall"]["correct_pixels"] == 1.0 and metrics["overall"]["unanswered"] == 0.0
    assert record["score"] == 1.0 and record["predictions"] == sum(calls)
    assert record["status"] == "done" and [r["prompts"] for r in record["rounds"]] == calls
    submission = json.loads((tmp_path / "submission.json").read_text())
    for task_id, truths in sample_solutions.items():
        assert [e["attempt_1"] for e in submission[task_id]] == [t.tolist() for t in truths]


def test_oracle_in_the_wrong_space_scores_clearly_less(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=8)
    engine = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings, wrong_space=True)
    run_with(engine, sample_challenges, tokenizer, tmp_path, settings)
    overall = json.loads((tmp_path / "metrics.json").read_text())["overall"]
    assert overall["score"] <= 0.75
    assert overall["accuracy"] < 0.6  # only views whose inverse leaves the truth unchanged are right


def test_run_writes_one_record_per_work_item(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=10, samples=3, temperature=0.7, adaptive=False)
    engine = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    run_with(engine, sample_challenges, tokenizer, tmp_path, settings)
    records = list(read_predictions(tmp_path / "predictions.jsonl"))
    keys = [r.key for r in records]
    assert len(keys) == len(set(keys)) == 10 * 10 * 3
    assert {r.mode for r in records} == {"sample"}
    run_json = json.loads((tmp_path / "run.json").read_text())
    assert run_json["settings"]["generation"]["samples"] == 3 and run_json["engine"] == {"engine": "oracle"}
    assert set(run_json["stage_seconds"]) == {"prompts", "generate", "record", "select", "select_and_evaluate"}


def test_garbage_answers_are_recorded_misses(sample_challenges, tokenizer, tmp_path):
    engine = ScriptedEngine([
        Completion("\x00 junk", 3, -1.0, "stop"),
        Completion(" shape: 2x2\n1 12\n2 3", 12, -2.0, "length"),
    ])
    run_with(engine, sample_challenges, tokenizer, tmp_path, RunSettings.of(), solutions=False)
    records = list(read_predictions(tmp_path / "predictions.jsonl"))
    assert len(records) == 80 and all(r.grid is None for r in records)
    assert {r.error.split(":")[0] for r in records} == {"parse error", "truncated"}
    submission = orjson.loads((tmp_path / "submission.json").read_bytes())
    assert validate_submission(sample_challenges, submission) == []


def test_prompts_too_long_are_unanswerable_not_fatal(sample_challenges, tokenizer, tmp_path):
    engine = ScriptedEngine([Completion(" shape: 1x1\n1 5\n", 8, -1.0, "stop")], max_model_len=300)
    record = run_with(engine, sample_challenges, tokenizer, tmp_path, RunSettings.of(), solutions=False)
    records = list(read_predictions(tmp_path / "predictions.jsonl"))
    assert len(records) == 80 and engine.calls == []
    assert all(r.error.startswith("unanswerable: even one train example") for r in records)
    assert record["predictions"] == 80


def test_bad_tasks_get_fallbacks_and_the_rest_run(sample_challenges, sample_solutions, tokenizer, tmp_path):
    raw = json.loads((SAMPLE / "challenges.json").read_text())
    raw["bad00001"] = {"train": [{"input": [[1, 2], [3]], "output": [[1]]}], "test": [{"input": [[1]]}, {}]}
    raw["bad00002"] = {"train": [{"input": [[1]], "output": [[1]]}]}
    path = tmp_path / "challenges.json"
    path.write_text(json.dumps(raw))
    challenges = load_challenges(path)
    assert [str(p) for p in challenges.problems] == [
        "task bad00001: train[0].input: ragged grid: row 1 has 1 cells, row 0 has 2",
        "task bad00002: test: missing or empty (need a non-empty list of test inputs)",
    ]
    settings = RunSettings.of()
    engine = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    run_with(engine, challenges, tokenizer, tmp_path / "out", settings)
    submission = json.loads((tmp_path / "out" / "submission.json").read_text())
    assert validate_submission(challenges, submission) == []
    assert len(submission["bad00001"]) == 2 and len(submission["bad00002"]) == 1
    assert submission["00576224"][0]["attempt_1"] == sample_solutions["00576224"][0].tolist()


def test_select_replays_a_saved_run(sample_challenges, sample_solutions, tokenizer, tmp_path, capsys):
    settings = RunSettings.of()
    run_with(OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), sample_challenges, tokenizer,
             tmp_path / "run", settings)
    code = main(["select", "--challenges", str(SAMPLE / "challenges.json"),
                 "--predictions", str(tmp_path / "run" / "predictions.jsonl"), "--out", str(tmp_path / "again"),
                 "--solutions", str(SAMPLE / "solutions.json")])
    assert code == 0
    assert (tmp_path / "again" / "submission.json").read_bytes() == (tmp_path / "run" / "submission.json").read_bytes()
    assert "overall" in capsys.readouterr().out
    assert main(["validate", "--challenges", str(SAMPLE / "challenges.json"),
                 "--submission", str(tmp_path / "again" / "submission.json")]) == 0
    code = main(["evaluate", "--challenges", str(SAMPLE / "challenges.json"), "--solutions",
                 str(SAMPLE / "solutions.json"), "--predictions", str(tmp_path / "run" / "predictions.jsonl")])
    assert code == 0 and "1.000" in capsys.readouterr().out


class RecordingEngine(ScriptedEngine):
    """A scripted engine that keeps every request it was sent."""

    def __init__(self, completions):
        super().__init__(completions)
        self.requests = []

    def generate(self, requests, deadline=None):
        self.requests.extend(requests)
        return super().generate(requests, deadline)


def test_a_restricted_vocabulary_reaches_every_request_and_the_log(sample_challenges, tokenizer, tmp_path):
    engine, lines = RecordingEngine([Completion(" shape: 1x1\n1 5\n", 8, -1.0, "stop")]), []
    settings = RunSettings.of(restrict_vocabulary=True, time_budget=None)
    run(sample_challenges, engine, tokenizer, tmp_path, settings, {"test": True}, log=lines.append)
    expected = answer_vocabulary(tokenizer, get_encoder(settings.format.encoder), {tokenizer.eos_token_id})
    assert len(engine.requests) == 80 and {r.allowed_token_ids for r in engine.requests} == {expected}
    assert f"restricted vocabulary: decoding writes only the {len(expected)} tokens of the shape-row-numbers " \
           "format and the end of turn" in lines
    unrestricted = RecordingEngine([Completion(" shape: 1x1\n1 5\n", 8, -1.0, "stop")])
    run(sample_challenges, unrestricted, tokenizer, tmp_path / "free", RunSettings.of(time_budget=None), {"test": True},
        log=lambda _: None)
    assert {r.allowed_token_ids for r in unrestricted.requests} == {()}
    with pytest.raises(ValueError, match="not beam"):
        RunSettings.of(mode="beam", restrict_vocabulary=True)


class JudgeFavouringEngine(ScriptedEngine):
    """Writes A, A, B for every prompt (A wins the vote); as judge it finds B far likelier."""

    def __init__(self, a: str, b: str, b_tokens: int):
        super().__init__([Completion(a, 8, -1.0, "stop"), Completion(a, 8, -1.0, "stop"), Completion(b, 8, -1.0, "stop")])
        self.b_tokens = b_tokens

    def score(self, requests):
        return [[-0.01 if len(r.continuation_token_ids) == self.b_tokens else -5.0] * len(r.continuation_token_ids)
                for r in requests]


def test_the_final_submission_is_the_judges_not_the_last_rounds_vote(sample_challenges, tokenizer, tmp_path):
    # The last round writes the vote's submission.json; the judge's scores, computed after it, must
    # rebuild it (the run keeps the round's submission only while no score has come in since).
    encoder = get_encoder("shape-row-numbers")
    a_grid, b_grid = [[5, 5], [5, 5]], [[7]]
    a, b = (encoder.encode(np.array(g, dtype=np.uint8))[len(encoder.answer_start):] for g in (a_grid, b_grid))
    b_tokens = len(tokenizer.encode("```grid" + b, add_special_tokens=False)) - len(tokenizer.encode("```grid", add_special_tokens=False))
    settings = RunSettings.of(augmentations=1, samples=3, temperature=1.0, selector="judge", judge_top_k=2,
                              judge_views=1, time_budget=None)
    lines = []
    record = run(sample_challenges, JudgeFavouringEngine(a, b, b_tokens), tokenizer, tmp_path, settings, {},
                 log=lines.append)
    assert record["status"] == "done" and record["judge"]["computed"] == 2 * 10
    submission = orjson.loads((tmp_path / "submission.json").read_bytes())
    attempts = [entry for entries in submission.values() for entry in entries]
    assert len(attempts) == 10
    assert all(entry == {"attempt_1": b_grid, "attempt_2": a_grid} for entry in attempts)
