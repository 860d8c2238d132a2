"""The model as judge and beam search: what is scored, the cache, and the numbers through real vLLM."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, SAMPLE
from doubles import OracleEngine, use_fake_clock
from submission import judge as judge_module
from submission.augment import Augmentation, plan_augmentations
from submission.encoders import get_encoder, parse_answer
from submission.engine import GenerationRequest
from submission.judge import CACHE_NAME, Scorer, needed_keys, read_cache, run_judge, score_request
from submission.pipeline import run
from submission.settings import RunSettings
from submission.predictions import Prediction, append_predictions, read_predictions
from submission.prompts import answer_token_budget, build_prompt, get_template
from submission.select import as_grid

TASKS = ("00576224", "6ea4a07e")  # small sample tasks: two test inputs in 6ea4a07e


def candidate_predictions(challenges, solutions, task_ids=TASKS):
    """Per test input: the truth (2 votes), a one-cell change of it (1 vote) and a parse error."""
    preds = []
    for task_id in task_ids:
        for i, truth in enumerate(solutions[task_id]):
            wrong = truth.copy()
            wrong[0, 0] = (wrong[0, 0] + 1) % 10
            for s, grid in enumerate([truth, truth, wrong, None]):
                preds.append(Prediction(task_id, i, f"d{s}", 0, "", None if grid is None else grid.tolist(),
                                        "parse error: x" if grid is None else None, -1.0 - s, 10, "stop"))
    return preds


def test_a_copy_of_the_test_input_is_judged_only_when_fewer_than_k_others_exist(sample_challenges, sample_solutions):
    copy, truth = sample_challenges.tasks["00576224"].test_inputs[0], sample_solutions["00576224"][0]
    wrong = truth.copy()
    wrong[0, 0] = (wrong[0, 0] + 1) % 10
    preds = [Prediction("00576224", 0, f"d{s}", 0, "", grid.tolist(), None, -1.0, 10, "stop")
             for s, grid in enumerate([copy, copy, copy, truth, wrong])]

    def judged(k):
        return [key.grid for key in needed_keys(sample_challenges, preds, RunSettings.of(judge_views=1, judge_top_k=k))]

    assert judged(2) == [as_grid(truth.tolist()), as_grid(wrong.tolist())]  # the copy has the most votes
    assert judged(3)[-1] == as_grid(copy.tolist())


class SpyScorer:
    """Records what is scored. Wraps the real engine, or (engine=None) answers a log-prob per token
    from its id, for the cache logic that vLLM does not touch."""

    def __init__(self, engine=None, max_model_len=8192):
        self.engine, self.calls = engine, []
        self.max_model_len = engine.max_model_len if engine is not None else max_model_len

    def score(self, requests):
        out = (self.engine.score(requests) if self.engine is not None
               else [[-0.001 * t for t in r.continuation_token_ids] for r in requests])
        self.calls.append((requests, out))
        return out


def test_views_are_real_augmentations_that_map_each_candidate_back(sample_challenges, sample_solutions, tokenizer):
    settings = RunSettings.of(judge_views=10, judge_top_k=2)  # 8 dihedral views, then 2 with permuted colours and order
    preds = candidate_predictions(sample_challenges, sample_solutions)
    keys = needed_keys(sample_challenges, preds, settings)
    assert len(keys) == 3 * 2 * 10  # 3 test inputs x top 2 candidates x 10 views
    encoder = get_encoder(settings.format.encoder)
    for key in keys:
        task = sample_challenges.tasks[key.task_id]
        view = Augmentation.parse(key.view)
        assert key.view in [str(a) for a in plan_augmentations(task, key.test_index, 10)]
        grid = np.asarray(key.grid, dtype=np.uint8)
        assert np.array_equal(view.invert_grid(view.apply_grid(grid)), grid)
        request = score_request(tokenizer, task, key, settings, 8192)
        # what is scored is the candidate in the view: decode it, parse it, map it back
        text = tokenizer.decode(request.continuation_token_ids)
        assert text.endswith("```")  # the closing fence is scored too
        assert np.array_equal(view.invert_grid(parse_answer(encoder, text)), grid)
    views = {k.view for k in keys if (k.task_id, k.test_index) == ("00576224", 0)}
    assert len(views) == 10 and any("-c" in v for v in views)
    candidate = np.asarray(keys[0].grid, dtype=np.uint8)
    changed = sum(not np.array_equal(Augmentation.parse(v).apply_grid(candidate), candidate) for v in views)
    assert changed >= 8  # real transformations, not 10 copies of the identity


def test_scores_are_cached_and_reread_without_the_engine(sample_challenges, sample_solutions, tokenizer, tmp_path):
    preds = candidate_predictions(sample_challenges, sample_solutions)
    cache = tmp_path / CACHE_NAME
    settings = RunSettings.of(judge_views=3, judge_top_k=1)
    spy = SpyScorer()
    first = run_judge(sample_challenges, preds, settings, cache, Scorer(spy, tokenizer), model="m", log=lambda _: None)
    assert (first.needed, first.computed, first.cached, first.missing) == (9, 9, 0, 0)
    assert len(spy.calls) == 1 and len(spy.calls[0][0]) == 9  # one batched call
    # every score is the sum over exactly the continuation's tokens
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    sums = sorted(sum(lps) for lps in spy.calls[0][1])
    assert sorted(r["logprob"] for r in records) == pytest.approx(sums)
    truth = as_grid(sample_solutions["00576224"][0].tolist())
    assert set(first.scores[("00576224", 0)]) == {truth} and len(first.scores[("00576224", 0)][truth]) == 3

    again = run_judge(sample_challenges, preds, settings, cache, log=lambda _: None)  # no engine at all
    assert (again.cached, again.computed, again.missing, again.engine_seconds) == (9, 0, 0, 0.0)
    other_model = run_judge(sample_challenges, preds, settings, cache, model="another", log=lambda _: None)
    assert (other_model.cached, other_model.missing) == (0, 9)  # `--model another` counts only its own scores
    assert again.scores == first.scores

    more = run_judge(sample_challenges, preds, RunSettings.of(judge_views=3, judge_top_k=2), cache,
                     Scorer(spy, tokenizer), model="m", log=lambda _: None)
    assert (more.cached, more.computed) == (9, 9) and len(spy.calls[-1][0]) == 9  # only the new candidates

    other = run_judge(sample_challenges, preds,
                      RunSettings.of(judge_views=3, judge_top_k=1, template="output-from-examples-v0"),
                      cache, log=lambda _: None)
    assert (other.cached, other.missing) == (0, 9) and other.scores == {}  # other prompts: not the same scores

    with open(cache, "ab") as f:
        f.write(b'{"task_id": "00576224", "test_ind')  # a torn last line
    assert len(read_cache(cache, settings, "m")) == 18


def test_a_view_that_cannot_hold_the_candidate_is_recorded_unscorable(sample_challenges, sample_solutions, tokenizer,
                                                                     tmp_path):
    preds = candidate_predictions(sample_challenges, sample_solutions, ("00576224",))
    spy = SpyScorer(max_model_len=60)  # far too short for any prompt
    result = run_judge(sample_challenges, preds, RunSettings.of(judge_views=2, judge_top_k=1),
                       tmp_path / CACHE_NAME, Scorer(spy, tokenizer),
                       model="m", log=lambda _: None)
    assert (result.unscorable, result.computed, result.scores) == (2, 0, {}) and spy.calls == []
    again = run_judge(sample_challenges, preds, RunSettings.of(judge_views=2, judge_top_k=1),
                      tmp_path / CACHE_NAME, Scorer(spy, tokenizer),
                      model="m", log=lambda _: None)
    assert (again.cached, again.unscorable) == (2, 0) and spy.calls == []


# -- through real vLLM on the tiny model ------------------------------------------------------------------------

# vLLM computes in bfloat16, transformers here in float32 on the same bfloat16 weights: per token they
# agree within 0.02 nats (measured: at most 0.005), a 40-token candidate within 0.1 (measured: at most 0.03).
TOKEN_TOLERANCE, TOTAL_TOLERANCE = 0.02, 0.1


@pytest.mark.engine
def test_judge_score_is_the_sum_of_vllm_logprobs_of_exactly_the_candidate_tokens(
        vllm_engine, sample_challenges, sample_solutions, tokenizer, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    preds = candidate_predictions(sample_challenges, sample_solutions)
    append_predictions(tmp_path / "predictions.jsonl", preds)
    settings = RunSettings.of(judge_views=9, judge_top_k=2)
    spy = SpyScorer(vllm_engine)
    result = run_judge(sample_challenges, preds, settings, tmp_path / CACHE_NAME, Scorer(spy, tokenizer),
                       model=str(tiny_model_dir), log=lambda _: None)
    assert result.computed == result.needed == 3 * 2 * 9 and len(spy.calls) == 1
    requests, token_lps = spy.calls[0]
    encoder, template = get_encoder(settings.format.encoder), get_template(settings.format.template)
    by_request = {}
    for key, request, lps in zip(needed_keys(sample_challenges, preds, settings), requests, token_lps):
        task = sample_challenges.tasks[key.task_id]
        view = Augmentation.parse(key.view)
        # built independently: the generation prompt of the view, then the candidate in that view
        prompt = build_prompt(tokenizer, template, encoder, view.apply_task(task), key.test_index, 8192,
                              answer_token_budget(tokenizer, encoder, task))
        answer = encoder.encode(view.apply_grid(np.asarray(key.grid, np.uint8)))[len(encoder.answer_start):]
        assert request.prompt_token_ids == prompt.token_ids
        assert list(request.continuation_token_ids) == tokenizer.encode(answer, add_special_tokens=False)
        assert len(lps) == len(request.continuation_token_ids)
        assert result.scores[(key.task_id, key.test_index)][key.grid][key.view] == sum(lps)
        by_request[key] = (request, lps)

    hf = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    for key in list(by_request)[::7]:  # views of every candidate, colour-permuted ones included
        request, lps = by_request[key]
        ids = list(request.prompt_token_ids + request.continuation_token_ids)
        with torch.no_grad():
            logprobs = torch.log_softmax(hf(torch.tensor([ids])).logits[0].float(), dim=-1)
        start = len(request.prompt_token_ids)
        reference = [logprobs[j - 1, ids[j]].item() for j in range(start, len(ids))]
        shifted = sum(logprobs[j - 1, ids[j]].item() for j in range(start - 1, len(ids) - 1))
        assert np.max(np.abs(np.array(reference) - np.array(lps))) <= TOKEN_TOLERANCE
        assert abs(sum(reference) - sum(lps)) <= TOTAL_TOLERANCE
        assert abs(shifted - sum(lps)) > 5 * TOTAL_TOLERANCE  # an off-by-one would not pass
    print(f"\njudge: {result.computed} scores in {result.engine_seconds:.2f}s of engine time")

    # re-selecting reads the cache: no engine, the same scores
    done = subprocess.run(
        [sys.executable, "-m", "submission", "select", "--challenges", str(SAMPLE / "challenges.json"),
         "--predictions", str(tmp_path / "predictions.jsonl"), "--out", str(tmp_path / "again"),
         "--selector", "judge", "--judge-views", "9", "--judge-top-k", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{result.needed} cached, 0 computed in 0.0s engine time, 0 missing" in done.stdout
    submission = json.loads((tmp_path / "again" / "submission.json").read_text())
    for (task_id, i), table in result.scores.items():
        best = max(table, key=lambda g: sum(table[g].values()))
        assert submission[task_id][i]["attempt_1"] == [list(r) for r in best]


@pytest.mark.engine
def test_beam_search_returns_width_beams_by_decreasing_logprob(vllm_engine, tokenizer):
    from submission.engine import ScoreRequest

    prompt = tuple(tokenizer.encode("<|im_start|>user\n12\n34<|im_end|>\n<|im_start|>assistant\n```grid",
                                    add_special_tokens=False))
    requests = [GenerationRequest(prompt, 6, stop=("```",)), GenerationRequest(prompt[:-4], 9)]
    out = vllm_engine.beam_search(requests, beam_width=4)
    assert [len(beams) for beams in out] == [4, 4]
    for request, beams in zip(requests, out):
        logprobs = [b.cumulative_logprob for b in beams]
        assert logprobs == sorted(logprobs, reverse=True) and logprobs[0] > logprobs[-1]
        assert len({b.token_ids for b in beams}) == 4  # distinct beams
        for b in beams:
            assert 1 <= b.token_count == len(b.token_ids) <= request.max_tokens
            assert b.finish_reason in ("stop", "length")
        # the beams' log-probs are the model's: the same tokens scored in one prefill agree
        rescored = vllm_engine.score([ScoreRequest(request.prompt_token_ids, b.token_ids) for b in beams])
        assert [sum(lps) for lps in rescored] == pytest.approx(logprobs, abs=0.05)
    greedy = vllm_engine.generate([requests[1]])[0][0]
    print(f"\nbeam search, 4 beams of 9 tokens: best {out[1][0].cumulative_logprob:.3f}, "
          f"greedy {greedy.cumulative_logprob:.3f}")


@pytest.mark.engine
def test_beam_mode_run_records_each_beam_and_a_judge_run_records_its_cost(vllm_engine, tokenizer, sample_challenges,
                                                                           tmp_path):
    settings = RunSettings.of(augmentations=2, mode="beam", beam_width=3, max_tokens=12, selector="judge",
                           judge_views=2, judge_top_k=2, time_budget=None)
    record = run(sample_challenges, vllm_engine, tokenizer, tmp_path, settings, {"model": "tiny"},
                 SAMPLE / "solutions.json", log=lambda _: None)
    preds = list(read_predictions(tmp_path / "predictions.jsonl"))
    assert len(preds) == 10 * 2 * 3 and {p.mode for p in preds} == {"beam"}
    for key in {p.key[:3] for p in preds}:
        beams = sorted((p for p in preds if p.key[:3] == key), key=lambda p: p.sample)
        assert [p.sample for p in beams] == [0, 1, 2]
        assert [p.cumulative_logprob for p in beams] == sorted((p.cumulative_logprob for p in beams), reverse=True)
    run_json = json.loads((tmp_path / "run.json").read_text())
    assert run_json["settings"]["generation"]["mode"] == "beam" and run_json["judge"]["views"] == 2
    assert record["judge"]["computed"] + record["judge"]["unscorable"] == record["judge"]["needed"]


class SlowScorer(SpyScorer):
    def __init__(self, seconds_per_score, clock=time):
        super().__init__()
        self.seconds_per_score, self.clock = seconds_per_score, clock

    def score(self, requests):
        self.clock.sleep(self.seconds_per_score * len(requests))
        return super().score(requests)


def test_calls_hold_whole_test_inputs_the_first_one_small_under_a_deadline(sample_challenges, sample_solutions,
                                                                            tokenizer, tmp_path):
    preds = candidate_predictions(sample_challenges, sample_solutions)  # 3 test inputs x 2 candidates x 8 views
    calls = {}
    for name, deadline in (("none", None), ("far", time.monotonic() + 3600)):
        spy = SpyScorer()
        run_judge(sample_challenges, preds, RunSettings.of(judge_views=8, judge_top_k=2),
                  tmp_path / name / CACHE_NAME, Scorer(spy, tokenizer),
                  model="m", log=lambda _: None, chunk=40, first_chunk=20, deadline=deadline)
        calls[name] = [len(requests) for requests, _ in spy.calls]
    assert calls == {"none": [32, 16], "far": [16, 32]}  # whole test inputs of 16; a small first call to time


def test_judging_under_a_deadline_scores_whole_test_inputs_and_skips_the_rest(sample_challenges, sample_solutions,
                                                                             tokenizer, tmp_path, monkeypatch):
    # 16 scores per test input at 10 ms: 0.16 s each. Of 0.4 s, two test inputs fit; the third
    # would start with 0.08 s left. Time passes only while the scorer works (a fake clock).
    clock = use_fake_clock(monkeypatch, judge_module)
    preds = candidate_predictions(sample_challenges, sample_solutions)
    scorer = SlowScorer(0.01, clock)
    started = clock.monotonic()
    result = run_judge(sample_challenges, preds, RunSettings.of(judge_views=8, judge_top_k=2),
                       tmp_path / CACHE_NAME, Scorer(scorer, tokenizer),
                       model="m", log=lambda _: None, first_chunk=16, chunk=16, deadline=started + 0.4)
    assert clock.monotonic() == pytest.approx(started + 0.32)
    assert (result.computed, result.skipped) == (32, 16) and [len(c[0]) for c in scorer.calls] == [16, 16]
    assert len(result.scores) == 2 and all(len(views) == 8 for table in result.scores.values()
                                           for views in table.values())
    assert result.notes == ["time budget: 16 scores not computed; their test inputs are chosen by votes"]
    assert len(read_cache(tmp_path / CACHE_NAME, RunSettings.of(judge_views=8, judge_top_k=2), "m")) == 32


class SlowOracle(OracleEngine):
    """The oracle, taking ``seconds`` per prompt generated or candidate scored."""

    def __init__(self, *args, seconds, clock=time, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds, self.scored, self.clock = seconds, 0, clock

    def generate(self, requests, deadline=None):
        self.clock.sleep(self.seconds * len(requests))
        return super().generate(requests, deadline)

    def score(self, requests):
        self.clock.sleep(self.seconds * len(requests))
        self.scored += len(requests)
        return [[-0.001 * t for t in r.continuation_token_ids] for r in requests]


def test_generation_leaves_the_judge_its_time_within_the_budget(sample_challenges, sample_solutions, tokenizer,
                                                                tmp_path, monkeypatch):
    # 20 ms per prompt or score: round 1 (80 prompts) 1.6 s, the judge (10 test inputs x 1
    # candidate x 8 views) 1.6 s. Of a 4 s budget, round 2 gets only what the judge leaves.
    # Time passes only while the engine works (a fake clock), so the figures are exact under load.
    from submission import pipeline, rounds

    clock = use_fake_clock(monkeypatch, judge_module, pipeline, rounds)
    settings = RunSettings.of(augmentations=24, adaptive=False, selector="judge", judge_top_k=1, judge_views=8,
                           time_budget=4.0, reserve_seconds=0.4)
    engine = SlowOracle(sample_challenges, sample_solutions, tokenizer, settings, seconds=0.02, clock=clock)
    lines = []
    started = clock.monotonic()
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, SAMPLE / "solutions.json",
                 log=lines.append, started=started)
    assert clock.monotonic() <= started + 4.0
    assert record["status"] == "time budget reached"
    assert record["judge"]["computed"] == engine.scored == 80 and record["judge"]["skipped_for_time"] == 0
    assert 80 < record["prompts_sent"] < 240 and record["score"] == 1.0
    assert any("kept for the judge's 80 scores" in line for line in lines)


def test_each_tasks_candidates_are_scored_through_its_own_adapter(sample_challenges, sample_solutions, tokenizer,
                                                                   tmp_path):
    preds = candidate_predictions(sample_challenges, sample_solutions)
    spy = SpyScorer()
    adapters = {"00576224": "/adapters/00576224"}  # 6ea4a07e has none: the base model scores it
    run_judge(sample_challenges, preds, RunSettings.of(judge_views=2, judge_top_k=1),
              tmp_path / CACHE_NAME, Scorer(spy, tokenizer, adapters),
              model="m", log=lambda _: None)
    requests = spy.calls[0][0]
    keys = needed_keys(sample_challenges, preds, RunSettings.of(judge_views=2, judge_top_k=1))
    assert [r.lora for r in requests] == [adapters.get(k.task_id, "") for k in keys]
    assert {r.lora for r in requests} == {"/adapters/00576224", ""}
