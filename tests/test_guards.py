"""Guards against bugs a review planted and the suite once let through: each test fails on its bug."""

import json
import time

import pytest

from conftest import SAMPLE
from doubles import OracleEngine
from submission import kaggle_entry
from submission.pipeline import RESUME_KEYS, ResumeError, check_resumable, run
from submission.settings import RunSettings
from submission.predictions import read_predictions
from submission.submit import validate_submission


class WatchingEngine(OracleEngine):
    """The oracle, noting at each call whether a valid submission.json was on disk, and the deadline."""

    def __init__(self, challenges, *args, out, **kwargs):
        super().__init__(challenges, *args, **kwargs)
        self.challenges, self.out, self.seen = challenges, out, []

    def generate(self, requests, deadline=None):
        path = self.out / "submission.json"
        valid = path.is_file() and validate_submission(self.challenges, json.loads(path.read_text())) == []
        self.seen.append((valid, deadline))
        return super().generate(requests, deadline)


def test_a_valid_submission_is_on_disk_before_the_first_engine_call(sample_challenges, sample_solutions, tokenizer,
                                                                    tmp_path):
    settings = RunSettings.of(augmentations=8, time_budget=None)
    engine = WatchingEngine(sample_challenges, sample_solutions, tokenizer, settings, out=tmp_path)
    run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lambda _: None)
    assert engine.seen and engine.seen[0][0] is True


def test_every_engine_call_gets_the_generation_deadline(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=16, chunk_prompts=40, time_budget=3600, reserve_seconds=60, adaptive=False)
    engine = WatchingEngine(sample_challenges, sample_solutions, tokenizer, settings, out=tmp_path)
    started = time.monotonic()
    run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lambda _: None, started=started)
    assert len(engine.seen) == 4  # 160 prompts in chunks of 40
    assert all(deadline == pytest.approx(started + 3600 - 60) for _, deadline in engine.seen)


def test_the_run_is_told_to_end_before_the_kernel_kills_it():
    hard, budget = kaggle_entry.child_time_limits(1000.0)
    assert hard == 1000.0 - kaggle_entry.HARD_MARGIN
    assert budget == hard - kaggle_entry.SOFT_MARGIN and kaggle_entry.SOFT_MARGIN >= 60
    assert kaggle_entry.child_time_limits(2 * kaggle_entry.SOFT_MARGIN + kaggle_entry.HARD_MARGIN - 1) is None


def test_a_torn_last_line_is_skipped_and_the_run_resumes(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=8, time_budget=None)
    run(sample_challenges, OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), tokenizer,
        tmp_path, settings, {}, log=lambda _: None)
    path = tmp_path / "predictions.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])  # a kill in the middle of the last write
    assert len(list(read_predictions(path))) == 79
    again = OracleEngine(sample_challenges, sample_solutions, tokenizer, settings)
    record = run(sample_challenges, again, tokenizer, tmp_path, settings, {}, log=lambda _: None)
    assert again.calls == [1] and record["status"] == "done"


MEANINGFUL = {"seed": 1, "encoder": "minimal", "template": "output-from-examples-v0", "permute_background": True,
              "shuffle_order": False, "temperature": 0.9, "mode": "beam", "beam_width": 2, "min_prob": 0.2,
              "dfs_max_candidates": 4, "dfs_max_rounds": 2, "ttt_mode": "task", "restrict_vocabulary": True}


@pytest.mark.parametrize("key", sorted(MEANINGFUL))
def test_a_resume_refuses_settings_that_change_what_a_prediction_means(key, sample_challenges, sample_solutions,
                                                                       tokenizer, tmp_path):
    assert set(MEANINGFUL) == set(RESUME_KEYS)
    settings = RunSettings.of(augmentations=8, time_budget=None, temperature=0.7)  # sample mode
    run(sample_challenges, OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), tokenizer,
        tmp_path, settings, {}, SAMPLE / "solutions.json", log=lambda _: None)
    with pytest.raises(ResumeError, match=key):
        check_resumable(tmp_path, settings.replace(**{key: MEANINGFUL[key]}))
    check_resumable(tmp_path, settings.replace(augmentations=16, chunk_prompts=3))  # these may change


def test_a_resume_refuses_another_models_predictions(sample_challenges, sample_solutions, tokenizer, tmp_path):
    settings = RunSettings.of(augmentations=8, time_budget=None)
    run(sample_challenges, OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), tokenizer,
        tmp_path / "out", settings, {"model": str(tmp_path / "model-a")}, log=lambda _: None)
    check_resumable(tmp_path / "out", settings, str(tmp_path / "model-a"))  # the same model resumes
    with pytest.raises(ResumeError, match="holds predictions of another model"):
        check_resumable(tmp_path / "out", settings, str(tmp_path / "model-b"))
    with pytest.raises(ResumeError, match="another model"):
        run(sample_challenges, OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), tokenizer,
            tmp_path / "out", settings, {"model": str(tmp_path / "model-b")}, log=lambda _: None)
