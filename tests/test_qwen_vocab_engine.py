"""The decode paths through real vLLM on the vocabulary users bring: a tiny random Qwen2 carrying
Qwen2.5's real tokenizer (151,665 tokens) and Qwen2.5-0.5B's 151,936 tied embedding rows
(conftest.qwen_model_dir). Its answers are noise; what is checked is that every path runs, counts
and records exactly, and that the restricted vocabulary holds on a real BPE vocabulary."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from conftest import EAGER
from submission.dfs import model_ending
from submission.encoders import get_encoder, stop_strings
from submission.engine import EngineSettings, GenerationRequest, VllmEngine
from submission.judge import Scorer, judge_for_run
from submission.pipeline import run
from submission.settings import RunSettings
from submission.predictions import Prediction, read_predictions
from submission.prompts import answer_vocabulary
from submission.submit import validate_submission

pytestmark = pytest.mark.engine

# the text an answer in the shape-row-numbers format may hold after "```grid"
ANSWER_TEXT = re.compile(r"^(?: shape|[0-9]|:|x|\n| |```)*$")


@pytest.fixture(scope="module")
def qwen_engine(qwen_model_dir):
    engine = VllmEngine(EngineSettings(str(qwen_model_dir), cpu_kv_cache_gib=1, max_model_len=4096,
                                       enforce_eager=EAGER),
                        log=lambda _: None)
    yield engine
    engine.close()


def test_restricted_decoding_on_qwen2_5_s_vocabulary_writes_only_answer_text(qwen_engine, qwen_tokenizer,
                                                                             qwen_model_dir):
    ends = model_ending(qwen_tokenizer, str(qwen_model_dir), ()).end_token_ids
    allowed = answer_vocabulary(qwen_tokenizer, get_encoder("shape-row-numbers"), ends)
    assert len(allowed) == 18  # 16 answer tokens, <|im_end|> and <|endoftext|>
    prompt = "<|im_start|>user\nSolve it.<|im_end|>\n<|im_start|>assistant\n### Output\n\n```grid"
    ids = tuple(qwen_tokenizer.encode(prompt, add_special_tokens=False))
    free = GenerationRequest(ids, 40, n=4, temperature=1.0, seed=3, top_logprobs=1)
    out_free, out_restricted = qwen_engine.generate([free, replace(free, allowed_token_ids=allowed)])
    assert any(set(c.token_ids) - set(allowed) for c in out_free)  # the random model writes anything
    for completion in out_restricted:
        assert set(completion.token_ids) <= set(allowed), completion.text
        assert ANSWER_TEXT.match(completion.text), completion.text


@pytest.mark.parametrize("mode, options", [
    ("greedy", {}),
    ("greedy", {"restrict_vocabulary": True}),
    ("sample", {"samples": 2, "temperature": 1.0, "restrict_vocabulary": True}),
    ("beam", {"beam_width": 2}),
    ("dfs", {"min_prob": 0.2, "restrict_vocabulary": True}),
])
def test_every_decode_path_runs_on_qwen2_5_s_vocabulary(qwen_engine, qwen_tokenizer, qwen_model_dir,
                                                        sample_challenges, tmp_path, mode, options):
    settings = RunSettings.of(augmentations=2, max_tokens=24, mode=mode, time_budget=None, **options)
    record = run(sample_challenges, qwen_engine, qwen_tokenizer, tmp_path, settings, {"model": str(qwen_model_dir)},
                 log=lambda _: None)
    assert record["status"] == "done"
    predictions = list(read_predictions(tmp_path / "predictions.jsonl"))
    test_inputs = sum(len(t.test_inputs) for t in sample_challenges.tasks.values())
    views = {(p.task_id, p.test_index, p.augmentation) for p in predictions}
    assert len(views) == test_inputs * 2  # every view of every test input answered
    if mode in ("greedy", "sample"):
        assert len(predictions) == test_inputs * 2 * settings.completions_per_prompt
    assert all(p.mode == mode and p.token_count <= 24 for p in predictions)
    if options.get("restrict_vocabulary"):
        assert all(ANSWER_TEXT.match(p.text.split(stop_strings(get_encoder("shape-row-numbers"))[0])[0])
                   for p in predictions)
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sample_challenges, submission) == []


def test_the_judge_scores_candidates_through_qwen2_5_s_vocabulary(qwen_engine, qwen_tokenizer, qwen_model_dir,
                                                                  sample_challenges, sample_solutions, tmp_path):
    """The random model's own answers never parse, so the candidates are given: each test input's true
    output and a copy of its input, as two predictions."""
    predictions = []
    for task_id, task in sample_challenges.tasks.items():
        for i, test_input in enumerate(task.test_inputs):
            for sample, grid in enumerate((sample_solutions[task_id][i], test_input)):
                predictions.append(Prediction(task_id, i, "identity", sample, "", grid.tolist(), None, -1.0, 10,
                                              "stop", "greedy"))
    settings = RunSettings.of(judge_views=2, judge_top_k=2)
    scores, record = judge_for_run(sample_challenges, predictions, settings, tmp_path / "judge_scores.jsonl",
                                   Scorer(qwen_engine, qwen_tokenizer), str(qwen_model_dir), log=lambda _: None)
    test_inputs = sum(len(t.test_inputs) for t in sample_challenges.tasks.values())
    assert record["needed"] == test_inputs * 2 * 2 and record["computed"] + record["unscorable"] == record["needed"]
    assert record["computed"] > 0
    scored = [s for per_grid in scores.values() for views in per_grid.values() for s in views.values()]
    assert len(scored) == record["computed"] and all(s < 0 for s in scored)  # log-likelihoods
