"""Depth-first enumeration against an exhaustive search, on a toy model the double engine decodes."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from submission.dfs import DfsSettings, DfsStats, Ending, enumerate_completions
from submission.engine import Completion, GenerationRequest

END = 4  # the toy vocabulary: 0-3 write "abcd", 4 ends the completion
LETTERS = "abcd"


def toy_logprobs(context: tuple[int, ...]) -> np.ndarray:
    """A fixed, peaked next-token distribution for every context (seeded by the context)."""
    seed = int.from_bytes(hashlib.blake2b(repr(context).encode(), digest_size=4).digest(), "little")
    logits = np.random.default_rng(seed).normal(0, 2.0, END + 1)
    return logits - np.log(np.exp(logits).sum())


def decode(tokens) -> str:
    return "".join(LETTERS[t] for t in tokens if t != END)


class ToyEngine:
    """Greedy decoding of the toy model with the top-k log-probs at every position, as vLLM
    reports them (the top k plus the chosen token); records every call's prompts."""

    def __init__(self, stop: tuple[str, ...] = (), lose: set[int] | None = None):
        self.stop, self.calls, self.lose = stop, [], lose or set()

    def generate(self, requests: list[GenerationRequest], deadline=None):
        self.calls.append([r.prompt_token_ids for r in requests])
        results = []
        for number, r in enumerate(requests):
            if len(self.calls) - 1 in self.lose:
                results.append(None)
                continue
            tokens, logprobs, alternatives = [], [], []
            while len(tokens) < r.max_tokens:
                lp = toy_logprobs(r.prompt_token_ids + tuple(tokens))
                chosen = int(np.argmax(lp))
                top = sorted(range(END + 1), key=lambda t: -lp[t])[: r.top_logprobs]
                alternatives.append(tuple((t, float(lp[t])) for t in sorted(set(top) | {chosen}, key=lambda t: -lp[t])))
                tokens.append(chosen)
                logprobs.append(float(lp[chosen]))
                if chosen == END or any(s in decode(tokens) for s in r.stop):
                    break
            results.append([Completion(decode(tokens), len(tokens), sum(logprobs),
                                       "stop" if len(tokens) < r.max_tokens or tokens[-1] == END else "length",
                                       tuple(tokens), tuple(logprobs), tuple(alternatives))])
        return results


def exhaustive(prompt: tuple[int, ...], max_tokens: int, min_prob: float, stop=()) -> dict[tuple[int, ...], float]:
    """Every completion with probability >= min_prob, by trying every token at every step."""
    out = {}

    def walk(tokens, logprob):
        lp = toy_logprobs(prompt + tokens)
        for t in range(END + 1):
            total = logprob + float(lp[t])
            if total < math.log(min_prob):
                continue
            path = tokens + (t,)
            if t == END or any(s in decode(path) for s in stop) or len(path) == max_tokens:
                out[path] = total
            else:
                walk(path, total)

    walk((), 0.0)
    return out


PROMPTS = [(1,), (2, 3), (0, 0, 1), (3,), (1, 2, 2, 0)]


@pytest.mark.parametrize("piece_tokens", [0, 1, 2])
@pytest.mark.parametrize("min_prob", [0.5, 0.2, 0.1, 0.05, 0.02])
def test_enumeration_finds_exactly_the_completions_above_the_threshold(min_prob, piece_tokens):
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    settings = DfsSettings(min_prob, max_candidates=1000, max_rounds=100, piece_tokens=piece_tokens)
    results = enumerate_completions(ToyEngine(), requests, Ending(decode, frozenset({END}), ()), settings)
    for request, candidates in zip(requests, results):
        expected = exhaustive(request.prompt_token_ids, 6, min_prob)
        found = {c.token_ids: c.cumulative_logprob for c in candidates}
        assert len(found) == len(candidates), "a completion was found twice"
        greedy = ToyEngine().generate([GenerationRequest(request.prompt_token_ids, 6)])[0][0].token_ids
        above = {t: lp for t, lp in found.items() if lp >= math.log(min_prob)}
        assert set(above) == set(expected)
        assert set(found) - set(above) <= {greedy}  # only the greedy path may be below the threshold
        assert greedy in found
        for tokens, logprob in above.items():
            assert logprob == pytest.approx(expected[tokens], abs=1e-9)
        assert [c.cumulative_logprob for c in candidates] == sorted(found.values(), reverse=True)
        assert all(c.text == decode(c.token_ids) for c in candidates)


def test_the_toy_model_branches_at_all():
    # guards the test above against a toy model so peaked that only greedy paths exist
    sizes = [len(exhaustive(p, 6, 0.05)) for p in PROMPTS]
    assert sum(sizes) >= 2 * len(PROMPTS) and max(sizes) >= 4, sizes


def test_min_prob_one_gives_the_greedy_completion_only_and_lower_thresholds_give_supersets():
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    ending = Ending(decode, frozenset({END}), ())
    sets = []
    for min_prob in (1.0, 0.3, 0.1, 0.03):
        results = enumerate_completions(ToyEngine(), requests, ending, DfsSettings(min_prob, 1000, 100))
        sets.append([{c.token_ids for c in r} for r in results])
    greedy = [c[0].token_ids for c in ToyEngine().generate(requests)]
    assert sets[0] == [{g} for g in greedy]
    for higher, lower in zip(sets, sets[1:]):
        assert all(h <= l for h, l in zip(higher, lower))
    assert sum(map(len, sets[-1])) > sum(map(len, sets[1]))


@pytest.mark.parametrize("piece_tokens", [0, 1])
def test_a_stop_string_across_the_branch_point_ends_the_completion_there(piece_tokens):
    stop = ("cd",)
    requests = [GenerationRequest(p, 6, stop=stop) for p in PROMPTS]
    results = enumerate_completions(ToyEngine(stop), requests, Ending(decode, frozenset({END}), stop),
                                    DfsSettings(0.02, 1000, 100, piece_tokens))
    for request, candidates in zip(requests, results):
        expected = exhaustive(request.prompt_token_ids, 6, 0.02, stop)
        above = {c.token_ids for c in candidates if c.cumulative_logprob >= math.log(0.02)}
        assert above == set(expected)
        for c in candidates:
            assert "cd" not in c.text and (c.finish_reason == "length") == (len(c.token_ids) == 6 and
                                                                           c.token_ids[-1] != END and
                                                                           "cd" not in decode(c.token_ids))


def test_caps_keep_the_most_probable_branches_and_count_what_they_left():
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    ending = Ending(decode, frozenset({END}), ())
    full = enumerate_completions(ToyEngine(), requests, ending, DfsSettings(0.02, 1000, 100))
    stats = DfsStats()
    engine = ToyEngine()
    capped = enumerate_completions(engine, requests, ending, DfsSettings(0.02, 3, 1), stats=stats)
    assert len(engine.calls) == 2 and stats.rounds == 2
    for whole, few in zip(full, capped):
        assert 1 <= len(few) <= 3 and {c.token_ids for c in few} <= {c.token_ids for c in whole}
    assert stats.branches_dropped > 0 and stats.candidates == sum(map(len, capped))


def test_a_greedy_pass_that_does_not_finish_leaves_none_and_lost_branches_keep_what_was_found():
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    ending = Ending(decode, frozenset({END}), ())
    assert enumerate_completions(ToyEngine(lose={0}), requests, ending, DfsSettings(0.05)) == [None] * len(PROMPTS)
    results = enumerate_completions(ToyEngine(lose={1, 2, 3}), requests, ending, DfsSettings(0.05, 1000, 100))
    full = enumerate_completions(ToyEngine(), requests, ending, DfsSettings(0.05, 1000, 100))
    greedy = [c[0].token_ids for c in ToyEngine().generate(requests)]
    for found, whole, path in zip(results, full, greedy):
        tokens = {c.token_ids for c in found}
        assert path in tokens and tokens <= {c.token_ids for c in whole}
        # besides the greedy path, only branches whose own token ended them (no engine call needed)
        assert all(t[:-1] == path[: len(t) - 1] and (t[-1] == END or len(t) == 6) for t in tokens - {path})


def test_branches_go_out_together_and_continue_their_own_prefix():
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    engine = ToyEngine()
    enumerate_completions(engine, requests, Ending(decode, frozenset({END}), ()), DfsSettings(0.05, 1000, 100))
    assert engine.calls[0] == [p for p in PROMPTS]
    assert len(engine.calls) >= 2 and len(engine.calls[1]) > len(PROMPTS)  # one call for all prompts' branches
    for prompt in engine.calls[1]:
        assert any(prompt[: len(p)] == p and len(prompt) > len(p) for p in PROMPTS)


def test_branches_sent_in_pieces_stop_where_they_fall_below_the_threshold():
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    ending = Ending(decode, frozenset({END}), ())
    whole, pieces = DfsStats(), DfsStats()
    a = enumerate_completions(ToyEngine(), requests, ending, DfsSettings(0.05, 1000, 100, 0), stats=whole)
    b = enumerate_completions(ToyEngine(), requests, ending, DfsSettings(0.05, 1000, 100, 1), stats=pieces)
    assert [[c.token_ids for c in r] for r in a] == [[c.token_ids for c in r] for r in b]
    assert pieces.branches_pruned > 0 and whole.branches_pruned == 0
    assert pieces.tokens < whole.tokens and pieces.rounds > whole.rounds


class OracleBranchingEngine:
    """The true answer of every view (as OracleEngine writes it), with one alternative: at its last
    grid digit, another digit of probability 0.3 (the true one has 0.6, every other token 0.99)."""

    def __init__(self, oracle, tokenizer):
        self.tokenizer, self.calls = tokenizer, []
        eos = tokenizer.eos_token_id
        self.answers = {prompt: tuple(tokenizer.encode(text, add_special_tokens=False)) + (eos,)
                        for prompt, text in oracle.answers.items()}
        self.max_model_len = oracle.max_model_len

    def generate(self, requests, deadline=None):
        self.calls.append(len(requests))
        results = []
        for r in requests:
            root = next(p for p in self.answers if r.prompt_token_ids[: len(p)] == p)
            answer, done = self.answers[root], len(r.prompt_token_ids) - len(root)
            digits = [j for j, t in enumerate(answer) if self.tokenizer.decode([t]).isdigit()]
            last = digits[-1]
            tokens, logprobs, alternatives = answer[done:][: r.max_tokens], [], []
            for j, token in enumerate(tokens, start=done):
                if j == last:
                    other = self.tokenizer.encode("1" if self.tokenizer.decode([token]) != "1" else "2",
                                                  add_special_tokens=False)[0]
                    logprobs.append(math.log(0.6))
                    alternatives.append(((token, math.log(0.6)), (other, math.log(0.3))))
                else:
                    logprobs.append(math.log(0.99))
                    alternatives.append(((token, math.log(0.99)),))
            results.append([Completion(self.tokenizer.decode(list(tokens), skip_special_tokens=True), len(tokens),
                                       sum(logprobs), "stop", tokens, tuple(logprobs), tuple(alternatives))])
        return results

    def describe(self):
        return {"engine": "oracle-branching"}


def test_a_dfs_run_records_each_views_candidates_by_rank_and_resumes(sample_challenges, sample_solutions,
                                                                      tokenizer, tmp_path):
    from doubles import OracleEngine

    from submission.pipeline import RunSettings, run
    from submission.predictions import read_predictions

    settings = RunSettings(augmentations=8, time_budget=None, mode="dfs", min_prob=0.1)
    engine = OracleBranchingEngine(OracleEngine(sample_challenges, sample_solutions, tokenizer, settings), tokenizer)
    record = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lambda _: None)
    views = sum(len(t.test_inputs) for t in sample_challenges.tasks.values()) * 8
    predictions = list(read_predictions(tmp_path / "predictions.jsonl"))
    assert record["status"] == "done" and len(predictions) == 2 * views == record["dfs"]["candidates"]
    assert engine.calls == [views, views]  # the greedy pass, then every view's one branch together
    for p in predictions:
        truth = sample_solutions[p.task_id][p.test_index].tolist()
        assert p.mode == "dfs" and (p.grid == truth) == (p.sample == 0)
        assert p.cumulative_logprob == pytest.approx(math.log(0.6 if p.sample == 0 else 0.3)
                                                     + (p.token_count - 1) * math.log(0.99))
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert all(entry["attempt_1"] == sample_solutions[task][i].tolist()
               for task, entries in submission.items() for i, entry in enumerate(entries))
    again = run(sample_challenges, engine, tokenizer, tmp_path, settings, {}, log=lambda _: None)
    assert again["status"] == "done" and engine.calls == [views, views] and again["predictions"] == 2 * views
