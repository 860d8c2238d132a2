"""The model as judge: score candidate grids by their log-likelihood under augmented views.

For each test input, the top K distinct candidates (vote order) are each written into M
augmented views of the task: the prompt of the view (as generation builds it) followed by the
candidate mapped into that view and encoded as the model would write it (closing fence
included). One batched engine call returns the log-prob of every candidate token; a
candidate's score under a view is their sum. select.py ranks by the sum over views.

Scores are appended to ``judge_scores.jsonl`` in the run folder, one line per (task, test input,
candidate grid, view), with the encoder, template and model that made them; re-selecting reads
them back and costs no engine time.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from .augment import Augmentation, plan_augmentations
from .encoders import get_encoder
from .engine import ScoreRequest
from .predictions import Prediction
from .prompts import Unanswerable, answer_token_budget, build_prompt, get_template
from .select import Grid, TestKey, grid_vote, group_by_test_input, input_copies_last
from .settings import RunSettings
from .tasks import Challenges, Task

CACHE_NAME = "judge_scores.jsonl"


@dataclass(frozen=True)
class Scorer:
    """What computes the scores the cache lacks: the engine and its tokenizer, and each task's adapter
    (test-time fine-tuning: task id -> LoRA folder), so candidates are scored as they were generated."""

    engine: object
    tokenizer: object
    adapters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoreKey:
    task_id: str
    test_index: int
    grid: Grid
    view: str  # str(Augmentation)


@dataclass
class JudgeResult:
    scores: dict[TestKey, dict[Grid, dict[str, float]]]
    needed: int = 0  # (candidate, view) pairs the settings ask for
    cached: int = 0  # of those, found in the cache
    computed: int = 0  # scored by the engine now
    missing: int = 0  # neither (no engine given)
    unscorable: int = 0  # the view's prompt cannot hold the candidate
    skipped: int = 0  # not scored: they would not have finished before the deadline
    engine_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"judge: {self.needed} (candidate, view) scores needed: {self.cached} cached, {self.computed} "
                f"computed in {self.engine_seconds:.1f}s engine time, {self.missing} missing, "
                f"{self.unscorable} unscorable" + (f", {self.skipped} skipped for time" if self.skipped else ""))

    def report(self, log) -> None:
        log(self.summary())
        for note in self.notes:
            log(f"judge: {note}")


def judge_views(task: Task, test_index: int, settings: RunSettings) -> list[Augmentation]:
    """The first M views of the run's plan (the same seed, permutations and order as generation's)."""
    views = settings.views
    return plan_augmentations(task, test_index, settings.selection.judge_views, views.seed, views.permute_background,
                              views.shuffle_order)


def judged_candidates(predictions: list[Prediction], top_k: int, test_input: np.ndarray) -> list[Grid]:
    """The first K in vote order, a copy of the test input after the rest (it is ranked last anyway)."""
    return input_copies_last(grid_vote(predictions), test_input)[:top_k]


def needed_keys(challenges: Challenges, predictions: list[Prediction], settings: RunSettings) -> list[ScoreKey]:
    keys = []
    for (task_id, test_index), group in group_by_test_input(predictions).items():
        task = challenges.tasks.get(task_id)
        if task is None or test_index >= len(task.test_inputs):
            continue
        views = [str(v) for v in judge_views(task, test_index, settings)]
        grids = judged_candidates(group, settings.selection.judge_top_k, task.test_inputs[test_index])
        keys.extend(ScoreKey(task_id, test_index, grid, view) for grid in grids for view in views)
    return keys


def candidate_text(encoder, grid_in_view: np.ndarray) -> str:
    """What the model would write after the prompt's opened answer for this grid."""
    return encoder.encode(grid_in_view)[len(encoder.answer_start):]


def score_request(tokenizer, task: Task, key: ScoreKey, settings: RunSettings, max_model_len: int,
                  lora: str = "") -> ScoreRequest:
    """The prompt of the view and the candidate in that view, tokenized; Unanswerable if too long."""
    encoder, template = get_encoder(settings.format.encoder), get_template(settings.format.template)
    view = Augmentation.parse(key.view)
    continuation = tokenizer.encode(
        candidate_text(encoder, view.apply_grid(np.asarray(key.grid, dtype=np.uint8))), add_special_tokens=False
    )
    # The generation prompt of this view (its answer budget capped by --max-tokens as generation's is),
    # unless the candidate needs more room than that budget.
    budget = answer_token_budget(tokenizer, encoder, task)
    if settings.generation.max_tokens:
        budget = min(budget, settings.generation.max_tokens)
    answer_tokens = max(budget, len(continuation) + 1)
    prompt = build_prompt(tokenizer, template, encoder, view.apply_task(task), key.test_index, max_model_len,
                          answer_tokens)
    return ScoreRequest(prompt.token_ids, tuple(continuation), lora)


def _record_key(record: dict) -> ScoreKey:
    return ScoreKey(record["task_id"], record["test_index"], tuple(tuple(r) for r in record["grid"]), record["view"])


def read_cache(path: Path, settings: RunSettings, model: str | None, log=print) -> dict[ScoreKey, float | None]:
    """Cached scores made with this encoder and template (and model, when given); None = unscorable."""
    if not path.exists():
        return {}
    found: dict[ScoreKey, float | None] = {}
    models: set[str] = set()
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break  # a torn last line from a crash mid-write
            try:
                record = orjson.loads(line)
                if record["encoder"] != settings.format.encoder or record["template"] != settings.format.template:
                    continue
                if model is not None and record["model"] != model:
                    continue
                found[_record_key(record)] = record["logprob"]
                models.add(record["model"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                log(f"{path}:{number}: not a judge score record ({exc}); ignored")
    if len(models) > 1:
        log(f"{path}: scores from several models ({', '.join(sorted(models))}); the last of each is used. "
            "Pass --model to use one model's scores only")
    return found


def append_cache(path: Path, records: list[dict]) -> None:
    if not records:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def run_judge(
    challenges: Challenges,
    predictions: list[Prediction],
    settings: RunSettings,
    cache_path: Path,
    scorer: Scorer | None = None,
    model: str | None = None,
    log=print,
    deadline: float | None = None,
    seconds_per_score: float | None = None,
    chunk: int = 4096,
    first_chunk: int = 256,
) -> JudgeResult:
    """Scores of the top-K candidates under M views (``settings.selection``): from the cache (the
    scores of ``model``, when named), the rest from ``scorer``'s engine (batched, up to ``chunk``
    requests per call, whole test inputs per call, each call's scores appended to the cache as they land).

    With a ``deadline`` (time.monotonic()), a call holds only the test inputs that the speed
    measured so far (before the first call: ``seconds_per_score``, else a first call of at most
    ``first_chunk``) says will be scored in time; the test inputs left out are chosen by votes."""
    keys = needed_keys(challenges, predictions, settings)
    cache = read_cache(cache_path, settings, model, log)
    result = JudgeResult({}, needed=len(keys))
    todo = [k for k in keys if k not in cache]
    result.cached = len(keys) - len(todo)
    if todo and scorer is None:
        result.missing = len(todo)
        result.notes.append(f"{len(todo)} judge scores are not in {cache_path}; those candidates are not judged "
                            "(pass --model to compute them)")
        todo = []
    ready: list[tuple[ScoreKey, ScoreRequest]] = []
    unscorable = []
    for key in todo:
        try:
            ready.append((key, score_request(scorer.tokenizer, challenges.tasks[key.task_id], key, settings,
                                             scorer.engine.max_model_len, scorer.adapters.get(key.task_id, ""))))
        except Unanswerable as exc:
            unscorable.append(_cache_record(key, None, 0, settings, model, f"unscorable: {exc}"))
            cache[key] = None
    append_cache(cache_path, unscorable)
    result.unscorable = len(unscorable)
    groups = _by_test_input(ready)
    while groups:
        limit, rate = chunk, None
        if deadline is not None:
            rate = result.engine_seconds / result.computed if result.computed else seconds_per_score
            limit = first_chunk if rate is None else min(chunk, int((deadline - time.monotonic()) / max(rate, 1e-9)))
        take = size = 0
        while take < len(groups) and size + len(groups[take]) <= limit:
            size += len(groups[take])
            take += 1
        if take == 0:
            if rate is not None:  # not even the next test input would be scored in time
                result.skipped = sum(map(len, groups))
                result.notes.append(f"time budget: {result.skipped} scores not computed; their test inputs "
                                    "are chosen by votes")
                break
            take = 1  # a test input larger than a call goes alone
        part = [item for group in groups[:take] for item in group]
        groups = groups[take:]
        t0 = time.perf_counter()
        token_logprobs = scorer.engine.score([request for _, request in part])
        result.engine_seconds += time.perf_counter() - t0
        records = []
        for (key, _), lps in zip(part, token_logprobs):
            cache[key] = float(sum(lps))
            records.append(_cache_record(key, cache[key], len(lps), settings, model))
        append_cache(cache_path, records)
        result.computed += len(records)
    for key in keys:
        value = cache.get(key)
        if value is not None:
            result.scores.setdefault((key.task_id, key.test_index), {}).setdefault(key.grid, {})[key.view] = value
    return result


def _by_test_input(ready: list[tuple[ScoreKey, ScoreRequest]]) -> list[list[tuple[ScoreKey, ScoreRequest]]]:
    """Consecutive requests of the same test input (needed_keys keeps them together)."""
    groups: list[list[tuple[ScoreKey, ScoreRequest]]] = []
    for item in ready:
        last = groups[-1][0][0] if groups else None
        if last is not None and (last.task_id, last.test_index) == (item[0].task_id, item[0].test_index):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def judge_for_run(
    challenges: Challenges, predictions: list[Prediction], settings: RunSettings, cache_path: Path, scorer: Scorer,
    model: str | None, log=print, deadline: float | None = None, seconds_per_score: float | None = None,
) -> tuple[dict | None, dict]:
    """run_judge for the end of a run: a failure costs the judge, not the submission (the judge
    methods then rank in vote order). Returns the scores and what run.json records."""
    try:
        result = run_judge(challenges, predictions, settings, cache_path, scorer, model, log, deadline,
                           seconds_per_score)
    except Exception as exc:
        why = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:300]}"
        log(f"judge: failed ({why}); the attempts are chosen in vote order")
        return None, {"error": why}
    result.report(log)
    return result.scores, {
        "views": settings.selection.judge_views, "top_k": settings.selection.judge_top_k, "needed": result.needed,
        "cached": result.cached,
        "computed": result.computed, "missing": result.missing, "unscorable": result.unscorable,
        "skipped_for_time": result.skipped,
        "engine_seconds": round(result.engine_seconds, 3), "cache": str(cache_path),
    }


def _cache_record(key: ScoreKey, logprob: float | None, tokens: int, settings: RunSettings, model: str | None,
                  error: str | None = None) -> dict:
    return {
        "task_id": key.task_id, "test_index": key.test_index, "grid": [list(r) for r in key.grid],
        "view": key.view, "logprob": logprob, "tokens": tokens, "error": error,
        "model": model, "encoder": settings.format.encoder, "template": settings.format.template,
    }

