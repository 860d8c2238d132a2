"""Test doubles for the engine: they answer from the solutions, never from a model.

They exist to test the logic around the engine (augmentation, inversion, voting, files); the
path through real vLLM is tested separately on the tiny model.
"""

from __future__ import annotations

import time

import numpy as np

from submission.encoders import get_encoder
from submission.engine import Completion, GenerationRequest
from submission.pipeline import plan_work
from submission.settings import RunSettings
from submission.prompts import answer_token_budget, build_prompt, get_template


class OracleEngine:
    """Answers each prompt with the true output in that prompt's augmented space.

    It recognises a prompt by rendering every planned view itself; ``wrong_space`` answers the
    un-augmented output instead, as a pipeline that forgot to invert would need. Log-probs are
    seeded noise, as a model's are, so ties do not fall to whichever view came first.
    """

    def __init__(self, challenges, solutions, tokenizer, settings: RunSettings, max_model_len=8192,
                 wrong_space=False):
        self.max_model_len = max_model_len
        self.calls = []
        encoder, template = get_encoder(settings.format.encoder), get_template(settings.format.template)
        self.answers = {}
        for item in plan_work(challenges.tasks, settings):
            task = challenges.tasks[item.task_id]
            prompt = build_prompt(tokenizer, template, encoder, item.augmentation.apply_task(task), item.test_index,
                                  max_model_len, answer_token_budget(tokenizer, encoder, task))
            truth = solutions[item.task_id][item.test_index]
            answer = truth if wrong_space else item.augmentation.apply_grid(truth)
            self.answers[prompt.token_ids] = encoder.encode(answer)[len(encoder.answer_start):].removesuffix("```")
        self.rng = np.random.default_rng(0)

    def generate(self, requests: list[GenerationRequest], deadline=None):
        self.calls.append(len(requests))
        return [
            [Completion(self.answers[r.prompt_token_ids], 20, float(-self.rng.random() * 5), "stop")
             for _ in range(r.n)]
            for r in requests
        ]

    def describe(self):
        return {"engine": "oracle"}


class ScriptedEngine:
    """Answers every prompt with the same fixed completions (garbage, truncations, ...)."""

    def __init__(self, completions: list[Completion], max_model_len=8192):
        self.completions = completions
        self.max_model_len = max_model_len
        self.calls = []

    def generate(self, requests, deadline=None):
        self.calls.append(len(requests))
        cycle = iter(range(10**9))
        return [[self.completions[next(cycle) % len(self.completions)] for _ in range(r.n)] for r in requests]

    def describe(self):
        return {"engine": "scripted"}


class SlowBeamEngine(ScriptedEngine):
    """Beam search that takes ``seconds_per_prompt`` per prompt and cannot be interrupted, as
    vLLM's; it notes when each call started and ended on its clock."""

    def __init__(self, completions: list[Completion], seconds_per_prompt: float = 0.0, max_model_len=8192,
                 clock=time):
        super().__init__(completions, max_model_len)
        self.seconds_per_prompt = seconds_per_prompt
        self.clock = clock  # the time module, or a FakeClock
        self.spans = []

    def beam_search(self, requests, beam_width):
        start = self.clock.monotonic()
        self.calls.append(len(requests))
        self.clock.sleep(self.seconds_per_prompt * len(requests))
        self.spans.append((start, self.clock.monotonic()))
        return [[self.completions[b % len(self.completions)] for b in range(beam_width)] for _ in requests]


class FakeClock:
    """Stands in for the ``time`` module of the code under test: time passes only when a double
    "works" (``sleep``), so deadline logic is tested exactly, however busy the machine is."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic
    time = monotonic

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def use_fake_clock(monkeypatch, *modules) -> FakeClock:
    clock = FakeClock()
    for module in modules:
        monkeypatch.setattr(module, "time", clock)
    return clock
