"""Through real vLLM (CPU build) on the project's tiny Qwen2 model: one engine per test session."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, SAMPLE
from submission.engine import EngineSettings, GenerationRequest, VllmEngine
from submission.pipeline import run
from submission.settings import RunSettings
from submission.predictions import read_predictions
from submission.submit import validate_submission

pytestmark = pytest.mark.engine


def test_engine_reports_what_it_runs(vllm_engine):
    info = vllm_engine.describe()
    assert info["engine"] == "vllm" and info["device"] == "cpu" and info["dtype"] == "bfloat16"
    assert info["vllm_version"].startswith("0.")
    assert info["max_model_len"] == 8192  # capped at the tiny model's max_position_embeddings
    assert info["core"] == "this process"  # the shared test engine runs vLLM's core here


@pytest.mark.parametrize("before", [None, "1"])
def test_an_in_process_start_leaves_vllm_s_variable_as_it_found_it(monkeypatch, before):
    from submission.engine import _core_in_process

    key = "VLLM_ENABLE_V1_MULTIPROCESSING"
    if before is None:
        monkeypatch.delenv(key, raising=False)
    else:
        monkeypatch.setenv(key, before)
    with _core_in_process(True):
        assert os.environ[key] == "0"
    assert os.environ.get(key) == before


def test_a_second_engine_with_its_core_in_this_process_is_refused_before_it_starts(vllm_engine, tiny_model_dir):
    # closing either would tear down vLLM's process-wide state under the other (seen as "pipeline model
    # parallel group is not initialized" in the survivor's next generate)
    with pytest.raises(ValueError, match="already running here"):
        VllmEngine(EngineSettings(str(tiny_model_dir), in_process=True), log=lambda _: None)


def test_generate_returns_n_completions_with_logprobs(vllm_engine, tokenizer):
    ids = tuple(tokenizer.encode("<|im_start|>user\n12\n34<|im_end|>\n", add_special_tokens=False))
    requests = [GenerationRequest(ids, 5), GenerationRequest(ids, 9, n=3, temperature=1.0, seed=1, stop=("```",))]
    out = vllm_engine.generate(requests)
    assert [len(c) for c in out] == [1, 3]
    for completion in out[0] + out[1]:
        assert 1 <= completion.token_count <= 9
        assert completion.cumulative_logprob is not None and completion.cumulative_logprob <= 0
        assert completion.finish_reason in ("stop", "length")
    assert out[0][0].token_count == 5 or out[0][0].finish_reason == "stop"
    # the same seed gives the same samples
    again = vllm_engine.generate(requests[1:])
    assert [c.text for c in again[0]] == [c.text for c in out[1]]


def test_run_over_the_sample_writes_a_valid_submission(vllm_engine, tokenizer, sample_challenges, tmp_path):
    settings = RunSettings.of(augmentations=8, samples=2, temperature=1.0, max_tokens=48)
    record = run(sample_challenges, vllm_engine, tokenizer, tmp_path, settings, {"test": True},
                 SAMPLE / "solutions.json", log=lambda _: None)
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sample_challenges, submission) == []
    assert {t: len(v) for t, v in submission.items()} == sample_challenges.test_counts
    records = list(read_predictions(tmp_path / "predictions.jsonl"))
    keys = {r.key for r in records}
    assert len(records) == len(keys) == 10 * 8 * 2  # one per (test input, augmentation, sample)
    assert all(r.token_count > 0 and r.cumulative_logprob is not None for r in records)
    assert all((r.grid is None) == (r.error is not None) for r in records)
    assert record["engine"]["vllm_version"] and record["stage_seconds"]["generate"] > 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["overall"]["tasks"] == 8 and metrics["overall"]["predictions"] == 160


def test_cli_run_then_validate(tiny_model_dir, tmp_path):
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1")
    out = tmp_path / "run"
    # a model folder whose format file is malformed still runs, with the CLI's defaults and one line
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "arc_format.json").write_text('{"encoder": "shape-row-numbers",')
    done = subprocess.run(
        [sys.executable, "-m", "submission", "run", "--challenges", str(SAMPLE / "challenges.json"),
         "--solutions", str(SAMPLE / "solutions.json"), "--model", str(model), "--out", str(out),
         "--augmentations", "2", "--max-tokens", "24"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "overall" in done.stdout
    format_lines = [line for line in done.stdout.splitlines() if "arc_format.json" in line]
    assert len(format_lines) == 1 and "not readable JSON" in format_lines[0], format_lines
    # quiet by default: vLLM's warnings and errors only, not its INFO lines
    assert not re.search(r"\bINFO \d\d-\d\d ", done.stdout + done.stderr), (done.stdout + done.stderr)[-2000:]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["settings"]["views"]["augmentations"] == 2 and run_json["engine"]["device"] == "cpu"
    assert run_json["engine"]["core"] == "its own process"  # a run keeps vLLM's default, as on Kaggle
    assert sum(1 for _ in open(out / "predictions.jsonl")) == 20
    check = subprocess.run(
        [sys.executable, "-m", "submission", "validate", "--challenges", str(SAMPLE / "challenges.json"),
         "--submission", str(out / "submission.json")], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_a_passed_deadline_answers_none_for_every_request_and_the_engine_goes_on(vllm_engine, tokenizer):
    import time

    ids = tuple(tokenizer.encode("<|im_start|>user\n1 2 3<|im_end|>\n", add_special_tokens=False))
    requests = [GenerationRequest(ids, 200, n=2, temperature=1.0, seed=i) for i in range(6)]
    assert vllm_engine.generate(requests, deadline=time.monotonic()) == [None] * 6
    after = vllm_engine.generate(requests[:2], deadline=time.monotonic() + 600)
    assert [len(c) for c in after] == [2, 2]


def test_a_restricted_vocabulary_writes_only_the_answer_formats_tokens(vllm_engine, tokenizer, tiny_model_dir):
    from dataclasses import replace

    from submission.dfs import model_ending
    from submission.encoders import get_encoder
    from submission.prompts import answer_vocabulary

    ends = model_ending(tokenizer, str(tiny_model_dir), ()).end_token_ids
    allowed = answer_vocabulary(tokenizer, get_encoder("minimal"), ends)
    ids = tuple(tokenizer.encode("<|im_start|>user\n12\n34<|im_end|>\n", add_special_tokens=False))
    free = GenerationRequest(ids, 48, n=4, temperature=1.0, seed=3, top_logprobs=1)
    out_free, out_restricted = vllm_engine.generate([free, replace(free, allowed_token_ids=allowed)])
    assert any(set(c.token_ids) - set(allowed) for c in out_free)  # the random tiny model writes anything
    for completion in out_restricted:
        assert set(completion.token_ids) <= set(allowed) and set(completion.text) <= set("0123456789\n")


def test_the_installed_vllm_has_every_call_the_engine_module_makes(monkeypatch):
    import vllm

    from submission.engine import api_problems

    assert api_problems() == []
    monkeypatch.delattr(vllm.LLM, "enqueue")
    real = vllm.SamplingParams

    def without_allowed_token_ids(*args, allowed_token_ids=None, **kwargs):
        if allowed_token_ids is not None:
            raise TypeError("unexpected keyword argument 'allowed_token_ids'")
        return real(*args, **kwargs)

    monkeypatch.setattr(vllm, "SamplingParams", without_allowed_token_ids)
    problems = api_problems()
    assert problems[0].startswith("LLM.enqueue (AttributeError")
    assert problems[1:] == ["SamplingParams of a dfs request with a restricted vocabulary "
                            "(TypeError: unexpected keyword argument 'allowed_token_ids')"]
