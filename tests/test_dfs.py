"""Depth-first enumeration against an exhaustive search, on a toy model the double engine decodes."""

from __future__ import annotations

import hashlib
import json
import math
import re
import time

import numpy as np
import pytest

from submission.dfs import DfsSettings, DfsStats, Ending, enumerate_completions, model_ending
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


def scripted(table: dict[tuple[int, ...], dict[int, float]]):
    """A toy model written out: next-token probabilities per context (prompt + generated tokens);
    a context not listed ends (END has probability 1). Log-probs are math.log of them, so a sum of
    log(p) and log(1) = 0.0 terms is exactly log(p): a path can sit exactly at min_prob."""

    def logprobs(context: tuple[int, ...]) -> np.ndarray:
        probs = table.get(tuple(context), {END: 1.0})
        return np.array([math.log(probs[t]) if t in probs else -math.inf for t in range(END + 1)])

    return logprobs


class ToyEngine:
    """Greedy decoding of the toy model with the top-k log-probs at every position, as vLLM
    reports them (the top k plus the chosen token); records every call's prompts, requests,
    deadline and results. Each call takes ``seconds`` on its own clock (``clock``)."""

    def __init__(self, stop: tuple[str, ...] = (), lose: set[int] | None = None, model=toy_logprobs,
                 seconds: float = 0.0):
        self.stop, self.calls, self.lose, self.model = stop, [], lose or set(), model
        self.requests, self.deadlines, self.results = [], [], []
        self.clock, self.seconds = 100.0, seconds

    def generate(self, requests: list[GenerationRequest], deadline=None):
        self.calls.append([r.prompt_token_ids for r in requests])
        self.requests.append(list(requests))
        self.deadlines.append(deadline)
        self.clock += self.seconds
        results = []
        self.results.append(results)
        for number, r in enumerate(requests):
            if len(self.calls) - 1 in self.lose:
                results.append(None)
                continue
            tokens, logprobs, alternatives = [], [], []
            while len(tokens) < r.max_tokens:
                lp = self.model(r.prompt_token_ids + tuple(tokens))
                # vLLM masks the tokens outside allowed_token_ids, and reports the raw log-probs
                chosen = int(np.argmax(lp if not r.allowed_token_ids else
                                       [v if t in r.allowed_token_ids else -np.inf for t, v in enumerate(lp)]))
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


def exhaustive(prompt: tuple[int, ...], max_tokens: int, min_prob: float, stop=(),
               allowed=tuple(range(END + 1))) -> dict[tuple[int, ...], float]:
    """Every completion with probability >= min_prob, by trying every (allowed) token at every step."""
    out = {}

    def walk(tokens, logprob):
        lp = toy_logprobs(prompt + tokens)
        for t in allowed:
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


def test_a_restricted_vocabulary_enumerates_the_allowed_paths_only_at_their_raw_probability():
    allowed = (0, 1, END)  # "a", "b" and the end
    requests = [GenerationRequest(p, 6, allowed_token_ids=allowed) for p in PROMPTS]
    results = enumerate_completions(ToyEngine(), requests, Ending(decode, frozenset({END}), ()),
                                    DfsSettings(0.02, max_candidates=1000, max_rounds=100))
    for request, candidates in zip(requests, results):
        above = {c.token_ids: c.cumulative_logprob for c in candidates if c.cumulative_logprob >= math.log(0.02)}
        assert set(above) == set(exhaustive(request.prompt_token_ids, 6, 0.02, allowed=allowed))
        assert all(set(c.token_ids) <= set(allowed) for c in candidates)
    assert sum(map(len, results)) > len(PROMPTS)  # it did branch


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

    from submission.pipeline import run
    from submission.settings import RunSettings
    from submission.predictions import read_predictions

    settings = RunSettings.of(augmentations=8, time_budget=None, mode="dfs", min_prob=0.1)
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


# --- settings, Ending and model_ending at their edges


def test_settings_refuse_a_min_prob_outside_zero_to_one():
    with pytest.raises(ValueError, match=re.escape("--min-prob must be in (0, 1], not 0")):
        DfsSettings(0)
    above = math.nextafter(1.0, 2.0)
    with pytest.raises(ValueError, match=re.escape(f"--min-prob must be in (0, 1], not {above}")):
        DfsSettings(above)
    one = DfsSettings(1.0)  # probability 1 is allowed: the greedy completion only
    assert one.top_k == 1 and one.threshold == 0.0


CAPS_MESSAGE = "dfs needs --dfs-max-candidates >= 1, --dfs-max-rounds >= 0 and piece tokens >= 0"


@pytest.mark.parametrize("field", [{"max_candidates": 0}, {"max_rounds": -1}, {"piece_tokens": -1}])
def test_settings_refuse_each_cap_below_its_minimum_alone(field):
    with pytest.raises(ValueError, match=f"^{re.escape(CAPS_MESSAGE)}$"):
        DfsSettings(0.1, **field)


def test_settings_accept_each_cap_at_its_minimum():
    settings = DfsSettings(0.1, max_candidates=1, max_rounds=0, piece_tokens=0)
    assert (settings.max_candidates, settings.max_rounds, settings.piece_tokens) == (1, 0, 0)


def test_ending_finds_the_first_end_token_from_start_on():
    ending = Ending(decode, frozenset({END}), ())
    assert ending.find((END, 0)) == 0  # the default start is the first token
    assert ending.find((END, 0, END), 1) == 2  # an end token before start is not looked for
    assert ending.find((END, 0, 1), 1) is None


def test_ending_finds_the_token_that_completes_a_stop_string():
    ending = Ending(decode, frozenset({END}), ("cd",))
    assert ending.find((0, 2, 3, 1)) == 2  # "acdb": the "d" completes "cd"
    assert ending.find((0, END, 2, 3)) == 1  # "cd" only after the end token: the end token ends it
    assert ending.find((0, 1, 2)) is None
    assert Ending(decode, frozenset(), ("a",)).find((0, 1)) == 0  # completed by the very first token


def test_ending_text_is_cut_at_the_first_stop_occurrence():
    assert Ending(decode, frozenset({END}), ("cd",)).text((0, 2, 3, 1, 2, 3)) == "a"  # "acdbcd"
    assert Ending(decode, frozenset({END}), ("b", "cd")).text((0, 2, 3, 1)) == "a"  # "acdb": "cd" comes first
    assert Ending(decode, frozenset({END}), ("cd",)).text((0, 1, END)) == "ab"


class TokenizerDouble:
    def __init__(self, eos_token_id=None):
        if eos_token_id is not None:
            self.eos_token_id = eos_token_id
        self.decoded = []

    def decode(self, ids, skip_special_tokens=False):
        self.decoded.append((list(ids), skip_special_tokens))
        return "".join(LETTERS[t] for t in ids if t < END)


def test_model_ending_without_a_model_folder_ends_at_the_tokenizers_eos():
    tokenizer = TokenizerDouble(eos_token_id=7)
    ending = model_ending(tokenizer, None, ("cd",))
    assert ending.end_token_ids == frozenset({7}) and ending.stop == ("cd",)
    assert ending.text((0, 1)) == "ab" and tokenizer.decoded == [([0, 1], True)]
    assert model_ending(TokenizerDouble(), None, ()).end_token_ids == frozenset()  # no eos at all


def test_model_ending_adds_the_generation_configs_eos_ids_to_the_tokenizers(tmp_path):
    # as vLLM ends a completion: the tokenizer's eos and generation_config.json's (an id or a list)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [5, 6]}))
    assert model_ending(TokenizerDouble(7), str(tmp_path), ()).end_token_ids == frozenset({5, 6, 7})
    assert model_ending(TokenizerDouble(), str(tmp_path), ()).end_token_ids == frozenset({5, 6})
    bare = tmp_path / "bare"
    bare.mkdir()
    assert model_ending(TokenizerDouble(7), str(bare), ()).end_token_ids == frozenset({7})


# --- a scripted model: every count below is derived by hand from the table

L = math.log
P, Q = (9,), (8,)
SCRIPT = scripted({
    # P: greedy 0 0 0 0 END (0.12, below 0.2: kept anyway); branches 1, 2, 3 at exactly 0.2
    P: {0: 0.4, 1: 0.2, 2: 0.2, 3: 0.2}, P + (0,): {0: 0.6, 1: 0.4}, P + (0, 0): {0: 0.5, END: 0.5},
    P + (0, 0, 0): {0: 1.0},
    P + (1,): {3: 1.0}, P + (1, 3): {3: 1.0},  # 1 3 3 END: exactly 0.2, reached in two pieces
    P + (2,): {0: 0.5, END: 0.5}, P + (3,): {1: 0.6, END: 0.4},  # both fall below after one token
    # Q: greedy 1 1 2 0 END (0.15); branches END (0.3: its own token ends it), 2 (exactly 0.2), 1 1 3 (0.25)
    Q: {1: 0.5, END: 0.3, 2: 0.2}, Q + (1,): {1: 1.0}, Q + (1, 1): {2: 0.5, 3: 0.5}, Q + (1, 1, 2): {0: 0.6, END: 0.4},
})


LATER = 1e12  # a deadline on the monotonic clock that no test reaches


def run_script(monkeypatch, **request):
    engine = ToyEngine(model=SCRIPT, seconds=0.1234)
    monkeypatch.setattr(time, "perf_counter", lambda: engine.clock)  # each call takes 0.1234 s
    stats = DfsStats()
    requests = [GenerationRequest(p, 8, **request) for p in (P, Q)]
    results = enumerate_completions(engine, requests, Ending(decode, frozenset({END}), ()),
                                    DfsSettings(0.2, 8, 8, piece_tokens=1), deadline=LATER, stats=stats)
    return engine, stats, results


def test_completions_exactly_at_min_prob_are_found_whole_and_in_pieces(monkeypatch):
    engine, stats, results = run_script(monkeypatch)

    def candidate(tokens, logprobs):
        return Completion(decode(tokens), len(tokens), sum(logprobs), "stop", tokens, logprobs)

    assert results == [
        [candidate((1, 3, 3, END), (L(0.2), 0.0, 0.0, 0.0)),
         candidate((0, 0, 0, 0, END), (L(0.4), L(0.6), L(0.5), 0.0, 0.0))],
        [candidate((END,), (L(0.3),)),
         candidate((1, 1, 3, END), (L(0.5), 0.0, L(0.5), 0.0)),
         candidate((2, END), (L(0.2), 0.0)),
         candidate((1, 1, 2, 0, END), (L(0.5), 0.0, L(0.5), L(0.6), 0.0))],
    ]
    # round 1: Q's END branch ends at its own token (no call); the other five go out, one token each;
    # round 2: P's 1 3 (still exactly 0.2) continues with its second piece, twice as long
    assert [sorted((r.prompt_token_ids, r.max_tokens) for r in call) for call in engine.requests] == [
        [(Q, 8), (P, 8)],
        [(Q + (1, 1, 3), 1), (Q + (2,), 1), (P + (1,), 1), (P + (2,), 1), (P + (3,), 1)],
        [(P + (1, 3), 2)],
    ]
    # tokens: 5 + 5 greedy, 5 in round 1, 2 in round 2; below min_prob: P's greedy path from its
    # fourth token on (2), Q's from its fifth (1); pruned: P's 2 and 3 branches
    assert stats.as_dict() == {"rounds": 3, "branches_sent": 6, "branches_pruned": 2, "branches_dropped": 0,
                               "tokens": 17, "tokens_below_threshold": 3, "candidates": 6}
    assert stats.per_round == [{"branches": 2, "candidates": 2, "tokens": 10, "seconds": 0.123},
                               {"branches": 5, "candidates": 5, "tokens": 5, "seconds": 0.123},
                               {"branches": 1, "candidates": 6, "tokens": 2, "seconds": 0.123}]


def test_past_the_deadline_no_round_is_sent_and_its_branches_count_as_dropped(monkeypatch):
    engine = ToyEngine(model=SCRIPT, seconds=1.0)  # the greedy call ends at 101 s, past the deadline
    monkeypatch.setattr(time, "monotonic", lambda: engine.clock)
    stats = DfsStats()
    results = enumerate_completions(engine, [GenerationRequest(p, 8) for p in (P, Q)], Ending(decode, frozenset({END}), ()),
                                    DfsSettings(0.2, 8, 8, piece_tokens=1), deadline=100.5, stats=stats)
    assert len(engine.calls) == 1 and stats.rounds == 1  # the greedy pass only: its answers are kept
    assert [[c.token_ids for c in r] for r in results] == [[(0, 0, 0, 0, END)], [(1, 1, 2, 0, END)]]
    # P's branches 1, 2, 3 and Q's END, 2 and 1 1 3, none sent
    assert stats.branches_dropped == 6 and stats.branches_sent == 0


def test_every_call_is_greedy_with_the_top_k_and_the_deadline(monkeypatch):
    engine, _, _ = run_script(monkeypatch, n=4, temperature=0.9, seed=3, stop=("dd",))
    assert engine.deadlines == [LATER] * 3
    for number, call in enumerate(engine.requests):
        for r in call:
            assert (r.n, r.temperature, r.top_logprobs, r.stop) == (1, 0.0, 5, ("dd",))
            assert r.seed == (3 if number == 0 else None)  # a branch is no sample of the prompt's seed


def test_a_completion_the_engine_ended_unseen_is_stop_and_one_at_max_tokens_is_length():
    # the engine stops at END, which this Ending does not know (as vLLM stops at an eos or a stop
    # string the Ending was not given): not a "length" completion, though no end was found
    table = scripted({(5,): {0: 1.0}, (6,): {0: 1.0}, (6, 0): {0: 1.0}, (6, 0, 0): {1: 1.0}})
    results = enumerate_completions(ToyEngine(model=table), [GenerationRequest((5,), 3), GenerationRequest((6,), 3)],
                                    Ending(decode, frozenset(), ()), DfsSettings(1.0))
    assert results == [[Completion("a", 2, 0.0, "stop", (0, END), (0.0, 0.0))],
                       [Completion("aab", 3, 0.0, "length", (0, 0, 1), (0.0, 0.0, 0.0))]]


# --- the caps: each prompt's most probable branches first, as many as it has candidate slots left

CAPPED = scripted({
    (7,): {0: 0.4, 1: 0.3, 2: 0.2, 3: 0.1},  # greedy 0 END; branches 1, 2, 3 (exactly 0.1)
    (7, 1): {0: 0.3, 1: 0.3, 2: 0.2, 3: 0.2},  # 1 0 END: 0.09, ends below min_prob and gives its slot back
    (6,): {0: 0.85, 1: 0.15},  # greedy 0 END; branch 1 END (0.15), less probable than (7,)'s 1 and 2
})


@pytest.mark.parametrize("max_candidates, max_rounds, calls, found, dropped", [
    # one slot each: (7,)'s 1 goes first and ends below, its 2 takes the slot back next round; 3 waits to the end
    (2, 3, [[(7,), (6,)], [(7, 1), (6, 1)], [(7, 2)]], [[(0, END), (2, END)], [(0, END), (1, END)]], 1),
    # two slots each: 1 and 2 at once, 3 in the second round
    (3, 2, [[(7,), (6,)], [(7, 1), (7, 2), (6, 1)], [(7, 3)]],
     [[(0, END), (2, END), (3, END)], [(0, END), (1, END)]], 0),
])
def test_caps_send_each_prompts_most_probable_branches_into_its_free_slots(max_candidates, max_rounds, calls,
                                                                          found, dropped):
    engine, stats = ToyEngine(model=CAPPED), DfsStats()
    requests = [GenerationRequest((7,), 6), GenerationRequest((6,), 6)]
    results = enumerate_completions(engine, requests, Ending(decode, frozenset({END}), ()),
                                    DfsSettings(0.1, max_candidates, max_rounds, piece_tokens=0), stats=stats)
    assert engine.calls == calls
    assert [[c.token_ids for c in r] for r in results] == found
    assert stats.branches_dropped == dropped and stats.candidates == sum(map(len, found))


# --- the accounting, checked against what the engine was asked and returned


def test_the_stats_account_for_every_engine_call(monkeypatch):
    prompts = PROMPTS[:4]  # no two start alike: a branch's root is the prompt it starts with
    settings = DfsSettings(0.05, 1000, 100, piece_tokens=1)
    engine, stats = ToyEngine(seconds=0.1234), DfsStats()
    monkeypatch.setattr(time, "perf_counter", lambda: engine.clock)
    requests = [GenerationRequest(p, 8, n=3, temperature=0.7, seed=11) for p in prompts]
    results = enumerate_completions(engine, requests, Ending(decode, frozenset({END}), ()), settings,
                                    deadline=LATER + 1, stats=stats)
    threshold = math.log(0.05)
    calls, outputs = engine.requests, engine.results
    assert stats.rounds == len(calls) >= 4 and engine.deadlines == [LATER + 1] * len(calls)
    assert [r.prompt_token_ids for r in calls[0]] == prompts
    assert all((r.n, r.temperature, r.top_logprobs, r.seed, r.max_tokens) == (1, 0.0, settings.top_k, 11, 8)
               for r in calls[0])
    pieces, below, pruned = {}, 0, 0  # pieces: the prompt of each continuation -> which piece it is
    for number, (call, output) in enumerate(zip(calls, outputs)):
        for request, completions in zip(call, output):
            root = next(p for p in prompts if request.prompt_token_ids[: len(p)] == p)
            base = request.prompt_token_ids[len(root):]
            if number:
                piece = pieces.get(request.prompt_token_ids, 0)
                assert (request.n, request.temperature, request.top_logprobs, request.seed) == \
                    (1, 0.0, settings.top_k, None)
                assert request.max_tokens == min(8 - len(base), settings.piece_tokens * 2 ** piece)
            tokens = base + completions[0].token_ids
            logprobs = [float(toy_logprobs(root + tokens[:j])[tokens[j]]) for j in range(len(tokens))]
            last = next((j for j in range(len(base), len(tokens)) if tokens[j] == END), len(tokens) - 1)
            below += sum(1 for j in range(len(base), last + 1) if sum(logprobs[:j]) < threshold)
            if number and END not in tokens and len(tokens) < 8:  # stopped at its piece's length
                if sum(logprobs) >= threshold:
                    pieces[root + tokens] = piece + 1
                else:
                    pruned += 1
    assert max(pieces.values()) >= 2  # some branch went out in three pieces
    returned = [sum(len(c[0].token_ids) for c in output) for output in outputs]
    assert stats.as_dict() == {"rounds": len(calls), "branches_sent": sum(map(len, calls[1:])),
                               "branches_pruned": pruned, "branches_dropped": 0, "tokens": sum(returned),
                               "tokens_below_threshold": below, "candidates": sum(map(len, results))}
    assert [{k: r[k] for k in ("branches", "tokens", "seconds")} for r in stats.per_round] == \
        [{"branches": len(call), "tokens": n, "seconds": 0.123} for call, n in zip(calls, returned)]
    assert all(set(r) == {"branches", "candidates", "tokens", "seconds"} for r in stats.per_round)
    so_far = [r["candidates"] for r in stats.per_round]  # candidates found by the end of each round
    assert so_far[0] == len(prompts) and so_far == sorted(so_far) and so_far[-1] == stats.candidates


def test_branches_lost_with_a_worker_count_as_dropped():
    requests = [GenerationRequest(p, 6) for p in PROMPTS]
    engine, stats = ToyEngine(lose={1}), DfsStats()
    enumerate_completions(engine, requests, Ending(decode, frozenset({END}), ()), DfsSettings(0.05, 1000, 100),
                          stats=stats)
    assert len(engine.calls) == 2 and len(engine.calls[1]) >= 2
    assert stats.branches_dropped == stats.branches_sent == len(engine.calls[1])


def test_one_stats_object_adds_up_over_enumerations():
    # the pipeline passes one DfsStats to the enumeration of every chunk
    ending, settings = Ending(decode, frozenset({END}), ()), DfsSettings(0.05, 3, 3, piece_tokens=1)
    chunks = [[GenerationRequest(p, 6) for p in PROMPTS[:3]], [GenerationRequest(p, 6) for p in PROMPTS[3:]]]
    alone, shared = [], DfsStats()
    for chunk in chunks:
        alone.append(DfsStats())
        enumerate_completions(ToyEngine(), chunk, ending, settings, stats=alone[-1])
        enumerate_completions(ToyEngine(), chunk, ending, settings, stats=shared)
    assert all(s.branches_dropped > 0 and s.rounds >= 3 for s in alone)
    assert shared.as_dict() == {k: alone[0].as_dict()[k] + alone[1].as_dict()[k] for k in shared.as_dict()}
    # each round's own branches and tokens, whichever object the rounds were recorded in
    assert [(r["branches"], r["tokens"]) for r in shared.per_round] == [(r["branches"], r["tokens"]) for s in alone
                                                                        for r in s.per_round]
