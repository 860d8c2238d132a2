"""Work the engine loses is retried; no time budget means every round; a bug is not an engine failure."""

import json


from conftest import SAMPLE
from doubles import OracleEngine
from submission import pipeline
from submission.pipeline import run
from submission.settings import RunSettings
from submission.rounds import WorkItem, fit_to_time
from submission.submit import validate_submission


class LosingEngine(OracleEngine):
    """The oracle, but the prompts it is told to lose come back as None (a dead worker's share) the
    first ``times`` times they are sent."""

    def __init__(self, *args, lose: int = 1, times: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.lose, self.times, self.lost_ids = lose, times, {}

    def generate(self, requests, deadline=None):
        answers = super().generate(requests, deadline)
        if len(self.calls) == 1:
            self.lost_ids = {r.prompt_token_ids: 0 for r in requests[: self.lose]}
        for i, r in enumerate(requests):
            if r.prompt_token_ids in self.lost_ids and self.lost_ids[r.prompt_token_ids] < self.times:
                self.lost_ids[r.prompt_token_ids] += 1
                answers[i] = None
        return answers


def test_a_lost_prompt_is_sent_again_and_every_planned_prediction_is_made(sample_challenges, sample_solutions,
                                                                          tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=24, chunk_prompts=16, time_budget=36000, adaptive=False)
    engine = LosingEngine(sample_challenges, sample_solutions, tokenizer, settings)
    lines = []
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, SAMPLE / "solutions.json",
                 log=lines.append)
    assert record["status"] == "done" and record["predictions"] == 10 * 24 and record["score"] == 1.0
    assert engine.calls[:2] == [16, 1]  # the lost prompt alone, straight after its chunk
    assert record["engine_lost_prompts"] == {"lost": 1, "retried": 1}
    assert lines.count("engine: 1 prompts came back without an answer (not the time budget); "
                       "sending them again (retry 1 of 2)") == 1
    assert not any("time budget" in line and "cut" in line for line in lines)


def test_prompts_lost_for_good_end_as_incomplete_not_as_a_budget_stop(sample_challenges, sample_solutions, tokenizer,
                                                                      tmp_path):
    settings = RunSettings.of(augmentations=16, chunk_prompts=40, time_budget=None, adaptive=False)
    engine = LosingEngine(sample_challenges, sample_solutions, tokenizer, settings, lose=2, times=10**6)
    lines = []
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, SAMPLE / "solutions.json",
                 log=lines.append)
    assert record["status"] == "incomplete: 2 prompts lost by the engine"
    assert record["predictions"] == 10 * 16 - 2
    # each round tries them again (round 2 re-plans round 1's undone work), and one last pass at the end
    assert record["engine_lost_prompts"]["lost"] == 2 * 3 * 3
    assert validate_submission(sample_challenges, json.loads((tmp_path / "submission.json").read_text())) == []


def test_no_time_budget_fits_every_item():
    items = [WorkItem("a", 0, None, 0), WorkItem("b", 0, None, 1)]
    assert fit_to_time(items, 1, 0.5, float("inf")) == items
    assert fit_to_time(items, 1, 0.5, 0.6) == items[:1]


def test_no_time_budget_runs_every_round(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=16, time_budget=None, adaptive=False)
    engine = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lambda _: None)
    assert record["status"] == "done" and engine.calls == [80, 80] and len(record["rounds"]) == 2


def test_a_bug_of_the_program_is_not_reported_as_an_engine_failure(sample_challenges, sample_solutions, tokenizer,
                                                                   tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(pipeline, "fit_to_time", broken)
    settings = RunSettings.of(augmentations=16, time_budget=None, adaptive=False)
    engine = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    lines = []
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lines.append)
    line = broken.__code__.co_firstlineno + 1
    assert record["status"] == ("internal error: OverflowError: cannot convert float infinity to integer "
                                f"(test_lost_work.py:{line} in broken)")
    assert not any("engine failed" in line for line in lines)
    assert any(line.startswith("run: internal error, a bug of this program, not of the engine") and "Traceback" in line
               for line in lines)
    assert record["predictions"] == 0 and (tmp_path / "submission.json").is_file()


def test_judge_prompts_are_generations_prompts_under_max_tokens(sample_challenges, tokenizer):
    from submission.judge import ScoreKey, score_request
    from submission.pipeline import plan_work, prepare_requests

    # context so tight that the answer budget decides how many examples fit
    settings = RunSettings.of(augmentations=2, max_tokens=32)
    judge = RunSettings.of(max_tokens=32)
    checked = 0
    for max_model_len in (700, 900, 1200):
        items = plan_work(sample_challenges.tasks, settings)
        ready, _ = prepare_requests(sample_challenges.tasks, items, tokenizer, max_model_len, settings,
                                    log=lambda _: None)
        for item, request in ready:
            task = sample_challenges.tasks[item.task_id]
            grid = ((5,),)  # a candidate short enough to have been generated within 32 tokens
            key = ScoreKey(item.task_id, item.test_index, grid, str(item.augmentation))
            assert score_request(tokenizer, task, key, judge, max_model_len).prompt_token_ids == \
                request.prompt_token_ids, (item, max_model_len)
            checked += 1
    assert checked > 20
