"""Depth-first enumeration: the completions of a prompt whose probability is at least ``min_prob``.

The ARChitects (ARC Prize 2024) and NVARC (2025) decode this way instead of sampling; both walk
one branch at a time through their own KV-cache loop. Here every branch of every prompt goes to
the engine together, one batched call per round:

- round 0 decodes each prompt greedily and asks for the top-k log-probs at every generated
  position, with k = ceil(1 / min_prob): no token of probability >= min_prob can be missing there;
- every alternative token t at position j with (probability of the path up to j) * p(t) >= min_prob
  becomes a branch: prompt + path[:j] + t, which the next round continues greedily, the same rule
  then applying to the positions after j;
- a completion whose probability is >= min_prob leaves every greedy path it meets at a first
  position, where its prefix is >= min_prob too: it is found, and found once, at that departure.

A prompt's candidates are its greedy completion (always kept, whatever its probability, so the
mode gives at least what greedy decoding gives) and every other completion found with probability
>= min_prob, most probable first, at most ``max_candidates`` of them. A branch's probability only
falls as it grows, so each round sends a prompt's most probable pending branches first, as many
as its candidate slots left; the rest wait for a later round (a sent branch may end below
min_prob and give its slot back). The engine's prefix cache holds what a branch shares with its parent.

Log-probs are the model's raw ones (vLLM's default ``raw_logprobs``, no renormalisation); the end
of a completion is an end token or a stop string, found here on the whole path, since a stop string
may span the prompt/branch boundary that vLLM's own check does not look across.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from .engine import Completion, Engine, GenerationRequest, end_token_ids


@dataclass(frozen=True)
class DfsSettings:
    min_prob: float = 0.1
    max_candidates: int = 8  # per prompt, the greedy completion included
    max_rounds: int = 8  # engine calls after the greedy one
    # A branch is continued this many tokens at first, then twice as many each round while its
    # probability stays >= min_prob; one that falls below stops there (0: continue to the end)
    piece_tokens: int = 8

    def __post_init__(self):
        if not 0 < self.min_prob <= 1:
            raise ValueError(f"--min-prob must be in (0, 1], not {self.min_prob}")
        if self.max_candidates < 1 or self.max_rounds < 0 or self.piece_tokens < 0:
            raise ValueError("dfs needs --dfs-max-candidates >= 1, --dfs-max-rounds >= 0 and piece tokens >= 0")

    @property
    def top_k(self) -> int:
        """Top log-probs per position: at most floor(1/P) tokens can have probability >= P."""
        return max(1, math.ceil(1 / self.min_prob - 1e-9))

    @property
    def threshold(self) -> float:
        return math.log(self.min_prob)


@dataclass(frozen=True)
class _Branch:
    prompt: int  # index of its root request
    tokens: tuple[int, ...]  # generated so far, the branch token last (or the piece generated last round)
    logprobs: tuple[float, ...]  # one per token
    pieces: int = 0  # how many pieces of it were generated already

    @property
    def logprob(self) -> float:
        return sum(self.logprobs)


@dataclass
class DfsStats:
    """What an enumeration cost: engine calls, branches sent, tokens generated (and how many of
    them were generated after their path had already fallen below min_prob: what the greedy
    passes and the last piece of each pruned branch still cost)."""

    rounds: int = 0
    branches_sent: int = 0  # branch continuations sent (a branch sent in three pieces counts three)
    branches_pruned: int = 0  # stopped after a piece that took them below min_prob
    branches_dropped: int = 0  # left pending by the candidate and round caps, or the deadline
    tokens: int = 0
    tokens_below_threshold: int = 0
    candidates: int = 0
    per_round: list = field(default_factory=list)

    def as_dict(self) -> dict:
        """The totals (run.json); per_round is for benchmarks."""
        return {k: getattr(self, k) for k in ("rounds", "branches_sent", "branches_pruned", "branches_dropped",
                                              "tokens", "tokens_below_threshold", "candidates")}


class Ending:
    """Where a path ends: at its first end token, or at the token that completes a stop string."""

    def __init__(self, decode: Callable[[list[int]], str], end_token_ids: frozenset[int], stop: tuple[str, ...]):
        self.decode, self.end_token_ids, self.stop = decode, end_token_ids, stop

    def find(self, tokens: tuple[int, ...], start: int = 0) -> int | None:
        """Index of the token that ends ``tokens`` (none before ``start`` is looked for), or None."""
        end = next((j for j in range(start, len(tokens)) if tokens[j] in self.end_token_ids), None)
        if self.stop:
            limit = len(tokens) if end is None else end
            if self._has_stop(tokens[:limit]):
                lo, hi = max(start, 1), limit  # the shortest prefix holding a stop string
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self._has_stop(tokens[:mid]):
                        hi = mid
                    else:
                        lo = mid + 1
                end = lo - 1
        return end

    def _has_stop(self, tokens) -> bool:
        text = self.decode(list(tokens))
        return any(s in text for s in self.stop)

    def text(self, tokens: tuple[int, ...]) -> str:
        text = self.decode(list(tokens))
        cut = min((text.find(s) for s in self.stop if s in text), default=-1)
        return text if cut < 0 else text[:cut]


def model_ending(tokenizer, model_dir: str | None, stop: tuple[str, ...]) -> Ending:
    """The Ending of a model's completions: its end tokens (the tokenizer's, and the model
    folder's generation_config.json where a folder is given) and the encoder's stop strings."""
    eos = getattr(tokenizer, "eos_token_id", None)
    ends = end_token_ids(model_dir, eos) if model_dir else frozenset({eos} - {None})
    return Ending(lambda ids: tokenizer.decode(ids, skip_special_tokens=True), ends, stop)


def _piece(first: int, pieces: int, left: int) -> int:
    return left if first == 0 else min(left, first * 2**pieces)


def _candidate(ending: Ending, tokens: tuple[int, ...], logprobs: tuple[float, ...], reason: str) -> Completion:
    return Completion(ending.text(tokens), len(tokens), sum(logprobs), reason, tokens, logprobs)


def enumerate_completions(
    engine: Engine,
    requests: list[GenerationRequest],
    ending: Ending,
    settings: DfsSettings,
    deadline: float | None = None,
    stats: DfsStats | None = None,
) -> list[list[Completion] | None]:
    """Per request, its candidates most probable first; None where even the greedy pass did not
    finish (the deadline, or a lost worker). Branches cut by the deadline are dropped: what was
    found before it is kept."""
    stats = stats if stats is not None else DfsStats()
    k, threshold = settings.top_k, settings.threshold
    roots = [replace(r, n=1, temperature=0.0, top_logprobs=k) for r in requests]
    # the top-k log-probs are the model's raw ones: with a restricted vocabulary, branch only where decoding may go
    allowed = [frozenset(r.allowed_token_ids) for r in requests]
    found: list[list[Completion] | None] = [None] * len(requests)
    frontier: list[_Branch] = []

    def take(index: int, prefix: _Branch | None, completion: Completion) -> None:
        """Record the completed path and queue its branches from the newly generated positions."""
        base = prefix.tokens if prefix else ()
        tokens = base + completion.token_ids
        logprobs = (prefix.logprobs if prefix else ()) + completion.token_logprobs
        alternatives = ((),) * len(base) + completion.alternatives
        end = ending.find(tokens, len(base))
        reason = "stop" if end is not None else "length" if len(tokens) >= requests[index].max_tokens else "stop"
        last = end if end is not None else len(tokens) - 1
        # stopped at its piece's length, not at the end of the answer: alive while >= min_prob
        piece_ended = prefix is not None and end is None and len(tokens) < requests[index].max_tokens \
            and completion.finish_reason == "length"
        stats.tokens += len(completion.token_ids)
        so_far = sum(logprobs[: len(base)])
        for j in range(len(base), last + 1):
            if so_far < threshold:
                stats.tokens_below_threshold += last + 1 - j
                break
            for token, logprob in alternatives[j]:
                if token != tokens[j] and so_far + logprob >= threshold and (not allowed[index] or token in allowed[index]):
                    frontier.append(_Branch(index, tokens[:j] + (token,), logprobs[:j] + (logprob,)))
            so_far += logprobs[j]
        path, path_logprobs = tokens[: last + 1], logprobs[: last + 1]
        if piece_ended:
            if sum(path_logprobs) >= threshold:
                frontier.append(_Branch(index, path, path_logprobs, prefix.pieces + 1))
            else:
                stats.branches_pruned += 1
        elif prefix is None or sum(path_logprobs) >= threshold:  # the greedy path is always kept
            found[index].append(_candidate(ending, path, path_logprobs, reason))
            stats.candidates += 1

    # per_round: each engine call's branches, tokens and seconds; candidates found by its end (running)
    started, tokens_before = time.perf_counter(), stats.tokens
    outputs = engine.generate(roots, deadline=deadline)
    stats.rounds += 1
    for i, completions in enumerate(outputs):
        if completions is not None:
            found[i] = []
            take(i, None, completions[0])
    stats.per_round.append({"branches": len(roots), "candidates": stats.candidates,
                            "tokens": stats.tokens - tokens_before, "seconds": round(time.perf_counter() - started, 3)})

    for _ in range(settings.max_rounds):
        if not frontier or (deadline is not None and time.monotonic() >= deadline):
            break  # past the deadline the frontier is dropped unsent: each call would only be aborted
        # each prompt's most probable branches, as many as it has candidate slots left
        frontier.sort(key=lambda b: -b.logprob)
        slots = {i: settings.max_candidates - len(c) for i, c in enumerate(found) if c is not None}
        send, keep = [], []
        for branch in frontier:
            if slots.get(branch.prompt, 0) <= 0:
                keep.append(branch)  # a later round may have room: a sent branch can end below min_prob
                continue
            request = requests[branch.prompt]
            # a new branch's own token may end it; a continuation's last token was checked already
            end = ending.find(branch.tokens, len(branch.tokens) - 1) if branch.pieces == 0 else None
            if end is not None or len(branch.tokens) >= request.max_tokens:
                # the branch token itself ends the path (end of turn, a stop string, the token budget)
                found[branch.prompt].append(_candidate(ending, branch.tokens, branch.logprobs,
                                                       "stop" if end is not None else "length"))
                stats.candidates += 1
            else:
                send.append(branch)
            slots[branch.prompt] -= 1
        frontier = keep
        if not send:
            continue
        started, tokens_before = time.perf_counter(), stats.tokens
        continued = engine.generate(
            [replace(roots[b.prompt], prompt_token_ids=requests[b.prompt].prompt_token_ids + b.tokens,
                     max_tokens=_piece(settings.piece_tokens, b.pieces, requests[b.prompt].max_tokens - len(b.tokens)),
                     seed=None) for b in send],
            deadline=deadline,
        )
        stats.rounds += 1
        stats.branches_sent += len(send)
        for branch, completions in zip(send, continued):
            if completions is None:
                stats.branches_dropped += 1
            else:
                take(branch.prompt, branch, completions[0])
        stats.per_round.append({"branches": len(send), "candidates": stats.candidates,
                                "tokens": stats.tokens - tokens_before, "seconds": round(time.perf_counter() - started, 3)})
    stats.branches_dropped += len(frontier)
    return [None if c is None else sorted(c, key=lambda x: -x.cumulative_logprob) for c in found]
