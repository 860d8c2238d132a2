"""The main job: challenges -> augmented prompts -> batched engine calls -> predictions -> submission.

The work runs in rounds (see rounds.py) under a time budget: round 1 gives every test input its
8 dihedral views, later rounds add views while the measured throughput says they fit. Each
round's prompts go to the engine in as few calls as possible (chunks of ``chunk_prompts``, so a
crash loses at most one chunk); every completion is appended to predictions.jsonl as it lands,
and submission.json is rewritten after every round. A re-run on the same folder resumes: work
recorded in predictions.jsonl is not generated again. Engine failures, dead workers and SIGTERM
end the run early with a submission built from everything done so far. With a judge selector,
generation stops early enough to leave the judge its estimated time, and the judge scores what
fits before the deadline (judge.py).
"""

from __future__ import annotations

import hashlib
import platform
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import orjson

from .augment import Augmentation, plan_augmentations
from .encoders import get_encoder, stop_strings
from .dfs import DfsStats, Ending, enumerate_completions, model_ending
from .engine import Engine, GenerationRequest
from .metrics import evaluate, format_table
from .predictions import Prediction, append_predictions, read_predictions, to_prediction, unanswerable
from .prompts import Unanswerable, answer_token_budget, answer_vocabulary, build_prompt, get_template
from .rounds import Deadline, TestKey, WorkItem, fit_to_time, round_items, rounds_needed
from .judge import CACHE_NAME as JUDGE_CACHE
from .judge import Scorer, judge_for_run
from .select import get_selector, group_by_test_input, uses_judge
from .submit import build_submission, write_json_atomic
from .tasks import Challenges, Task, load_solutions
from .settings import RunSettings, recorded_options

# Time kept after the judge for the final selection, metrics and writes (at most half the reserve).
FINAL_WRITES_SECONDS = 10.0
# A judge score (one prefill with prompt log-probs) cost about one generated prompt of the same
# task on the CPU benchmark (docs/benchmarks.md); generation leaves that much time per planned score.
JUDGE_SCORE_PER_PROMPT = 1.0

# Prompts that come back without an answer while time is left (a worker died or failed) are sent
# again this many times within their chunk; after that, later rounds (which re-plan undone work) retry.
LOST_RETRIES = 2

# vLLM's beam search cannot be aborted, so beam mode sends smaller calls and checks the time
# between them (its cost per call is per generated token, so small calls lose little).
BEAM_CHUNK_PROMPTS = 64

# Settings that decide what a recorded prediction is (option names, settings.py): a resumed run must share them.
RESUME_KEYS = ("seed", "encoder", "template", "permute_background", "shuffle_order", "temperature", "mode",
               "beam_width", "min_prob", "dfs_max_candidates", "dfs_max_rounds", "ttt_mode", "restrict_vocabulary")


class Terminated(BaseException):
    """SIGTERM arrived; a BaseException so that no `except Exception` inside vLLM swallows it."""


@dataclass
class StageClock:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


def plan_views(tasks: dict[str, Task], settings: RunSettings) -> dict[TestKey, list[Augmentation]]:
    views = settings.views
    return {
        (task.id, i): plan_augmentations(task, i, views.augmentations, views.seed, views.permute_background,
                                         views.shuffle_order)
        for task in tasks.values()
        for i in range(len(task.test_inputs))
    }


def plan_work(tasks: dict[str, Task], settings: RunSettings) -> list[WorkItem]:
    """Every work item of the full plan, in plan order."""
    return [
        WorkItem(key[0], key[1], aug, view)
        for key, plan in plan_views(tasks, settings).items()
        for view, aug in enumerate(plan)
    ]


def prepare_requests(
    tasks: dict[str, Task], items: list[WorkItem], tokenizer, max_model_len: int, settings: RunSettings,
    log=print, budgets: dict[str, int] | None = None, adapters: dict[str, str] | None = None,
    allowed_token_ids: tuple[int, ...] = (),
) -> tuple[list[tuple[WorkItem, GenerationRequest]], list[Prediction]]:
    """Prompts for the items that fit the context, and recorded misses for those that do not; a
    task with an adapter in ``adapters`` (task id -> LoRA folder, ttt.py) is asked through it, and
    non-empty ``allowed_token_ids`` are the only tokens every request may write."""
    encoder, template = get_encoder(settings.format.encoder), get_template(settings.format.template)
    stop = tuple(stop_strings(encoder))
    budgets = {} if budgets is None else budgets  # answer tokens per task, kept across rounds
    ready, misses = [], []
    for item in items:
        task = tasks[item.task_id]
        if item.task_id not in budgets:
            budgets[item.task_id] = answer_token_budget(tokenizer, encoder, task)
            if settings.generation.max_tokens:
                budgets[item.task_id] = min(budgets[item.task_id], settings.generation.max_tokens)
        answer_tokens = budgets[item.task_id]
        try:
            prompt = build_prompt(
                tokenizer, template, encoder, item.augmentation.apply_task(task), item.test_index,
                max_model_len, answer_tokens,
            )
        except Unanswerable as exc:
            log(f"task {item.task_id}: test[{item.test_index}] view {item.augmentation}: unanswerable: {exc}")
            misses.extend(
                unanswerable(item.task_id, item.test_index, item.augmentation, s, str(exc))
                for s in range(settings.generation.completions_per_prompt)
            )
            continue
        if prompt.examples_dropped:
            log(f"task {item.task_id}: test[{item.test_index}] view {item.augmentation}: "
                f"dropped {prompt.examples_dropped} train example(s) to fit the context")
        ready.append((item, GenerationRequest(
            prompt.token_ids, answer_tokens, settings.generation.samples, settings.generation.temperature,
            _request_seed(settings.views.seed, item), stop, item.task_id,
            lora=(adapters or {}).get(item.task_id, ""), allowed_token_ids=allowed_token_ids,
        )))
    return ready, misses


def _request_seed(seed: int, item: WorkItem) -> int:
    # A seed per prompt makes its samples reproducible whatever else is in the batch.
    digest = hashlib.blake2b(f"{seed}|{item.task_id}|{item.test_index}|{item.augmentation}".encode(), digest_size=4)
    return int.from_bytes(digest.digest(), "little")


def generate_predictions(
    engine: Engine, ready: list[tuple[WorkItem, GenerationRequest]], settings: RunSettings,
    deadline: float | None = None, ending: Ending | None = None, dfs_stats: DfsStats | None = None,
) -> tuple[list[Prediction], list[tuple[WorkItem, GenerationRequest]]]:
    """One engine call (dfs: one per enumeration round); returns the predictions of the prompts
    that finished, and the prompts that did not (aborted at the deadline, or lost with a worker)."""
    encoder = get_encoder(settings.format.encoder)
    mode = settings.generation.mode
    try:
        if mode == "beam":  # vLLM's beam search cannot be aborted: a chunk runs to its end
            outputs = engine.beam_search([request for _, request in ready], settings.generation.beam_width)
        elif mode == "dfs":
            if ending is None:
                raise ValueError("dfs mode needs the tokenizer's Ending")
            outputs = enumerate_completions(engine, [request for _, request in ready], ending, settings.generation.dfs,
                                            deadline, dfs_stats)
        else:
            outputs = engine.generate([request for _, request in ready], deadline=deadline)
    except Exception as exc:
        raise EngineFailure(f"{type(exc).__name__}: {exc}") from exc
    if len(outputs) != len(ready):
        raise RuntimeError(f"engine returned {len(outputs)} results for {len(ready)} prompts")
    predictions, unfinished = [], []
    for pair, completions in zip(ready, outputs):
        item = pair[0]
        if completions is None:
            unfinished.append(pair)
            continue
        keep = len(completions) if mode == "dfs" else settings.generation.completions_per_prompt
        for s, c in enumerate(completions[:keep]):
            predictions.append(to_prediction(
                encoder, item.task_id, item.test_index, item.augmentation, s,
                c.text, c.cumulative_logprob, c.token_count, c.finish_reason, mode,
            ))
    return predictions, unfinished


def finish(
    challenges: Challenges, predictions: list[Prediction], out_dir: Path, selector: str,
    solutions_path: Path | None, log=print, judge_scores: dict | None = None, written: dict | None = None,
) -> dict | None:
    """Select and write submission.json (``written``: the submission of these same predictions,
    already in the file); with solutions, write and print metrics.json."""
    submission = written
    if submission is None:
        submission = build_submission(challenges, predictions, get_selector(selector, judge_scores))
        write_json_atomic(out_dir / "submission.json", submission)
    if solutions_path is None:
        return None
    solutions, problems = load_solutions(solutions_path)
    for problem in problems:
        log(f"solutions: {problem}")
    metrics = evaluate(solutions, submission, predictions)
    write_json_atomic(out_dir / "metrics.json", metrics)
    log(format_table(metrics))
    return metrics


class EngineFailure(RuntimeError):
    """The engine (or a worker pool) raised during a call; the message is its exception's."""


def failure_origin(exc: BaseException) -> str:
    """Where an exception was raised: ``file:line in function`` of the innermost frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "unknown origin"
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno} in {frames[-1].name}"


class ResumeError(ValueError):
    """The run folder holds predictions made with other settings."""


def check_resumable(out_dir: Path, settings: RunSettings, model: str | None = None) -> None:
    """Refuse to resume a run folder whose predictions mean something else: other settings of
    RESUME_KEYS, or (when ``model`` is given) another model's folder."""
    run_json = out_dir / "run.json"
    if not (out_dir / "predictions.jsonl").exists() or not run_json.exists():
        return
    recorded = orjson.loads(run_json.read_bytes())
    before, now = recorded_options(recorded.get("settings", {})), settings.options()
    changed = [k for k in RESUME_KEYS if k in before and before[k] != now[k]]
    model_before = (recorded.get("inputs") or {}).get("model")
    if model is not None and model_before is not None and Path(model_before).resolve() != Path(model).resolve():
        raise ResumeError(f"{out_dir} holds predictions of another model ({model_before}); use --fresh to start over "
                          "with this one, or another --out")
    if changed:
        raise ResumeError(
            f"{out_dir} holds predictions made with other settings ({', '.join(f'{k}={before[k]!r}' for k in changed)}); "
            "use the same settings to resume, or --fresh to start over"
        )


@contextmanager
def sigterm_raises():
    """Turn SIGTERM into Terminated in the main thread, so the run can write what it has."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(
    challenges: Challenges,
    engine: Engine,
    tokenizer,
    out_dir: Path,
    settings: RunSettings,
    inputs: dict,
    solutions_path: Path | None = None,
    log=print,
    fresh: bool = False,
    started: float | None = None,
    adapters: dict[str, str] | None = None,
    ttt: dict | None = None,
) -> dict:
    """The whole job; returns what run.json holds. ``started`` (time.monotonic()) is when the
    time budget began, by default now; the caller passes its own start to count engine start-up
    (and test-time fine-tuning). ``adapters`` (task id -> LoRA folder) asks each such task's
    prompts and judge scores through its adapter; ``ttt`` is what run.json records of their training."""
    started = time.monotonic() if started is None else started
    job = prepare(challenges, engine, tokenizer, out_dir, settings, inputs, log, fresh, started, adapters or {}, ttt)
    status = generate_rounds(job)
    judge_scores, judge_record = judge_candidates(job, status)
    # the last round's submission.json holds every prediction unless the judge has scored since
    written = job.submission if judge_scores is None and job.submission_of == len(job.predictions) else None
    with job.clock.stage("select_and_evaluate"):
        metrics = finish(challenges, job.predictions, out_dir, settings.selection.selector, solutions_path, log,
                         judge_scores, written)
    return close_record(job, status, metrics, judge_record, started)


def prepare(challenges: Challenges, engine: Engine, tokenizer, out_dir: Path, settings: RunSettings, inputs: dict,
            log, fresh: bool, started: float, adapters: dict[str, str], ttt: dict | None) -> "_Job":
    """The run folder resumed (or started afresh), a valid submission.json and run.json written
    before any generation, and the job's plan, deadline, decoding limits and judge allowance."""
    budget = settings.budget
    deadline = Deadline.after(budget.time_budget, budget.reserve_seconds, started) if budget.time_budget else None
    out_dir.mkdir(parents=True, exist_ok=True)
    predictions_path = out_dir / "predictions.jsonl"
    if fresh:
        predictions_path.unlink(missing_ok=True)
    check_resumable(out_dir, settings, inputs.get("model"))
    predictions = list(read_predictions(predictions_path)) if predictions_path.exists() else []
    # Never end without a submission: write one from what exists before any generation.
    submission = build_submission(challenges, predictions, get_selector(settings.selection.selector))
    write_json_atomic(out_dir / "submission.json", submission)
    record = {
        "status": "running",
        "inputs": inputs,
        "settings": asdict(settings),
        "engine": engine.describe(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tasks": len(challenges.tasks),
        "bad_tasks": [str(p) for p in challenges.problems],
        "resumed_predictions": len(predictions),
        "ttt": ttt,
    }
    write_json_atomic(out_dir / "run.json", record)
    if predictions:
        log(f"resume: {len(predictions)} predictions already in {predictions_path}; their work is skipped")

    job = _Job(challenges, engine, tokenizer, settings, out_dir, deadline, log, predictions,
               plan_views(challenges.tasks, settings), adapters=adapters, record=record, model=inputs.get("model"),
               submission=submission, submission_of=len(predictions))
    generation, encoder = settings.generation, get_encoder(settings.format.encoder)
    if generation.mode == "dfs" or generation.restrict_vocabulary:
        # where a completion ends: dfs needs it, and the restricted vocabulary its end tokens
        ending = model_ending(tokenizer, job.model, tuple(stop_strings(encoder)))
        job.ending = ending if generation.mode == "dfs" else None
        if generation.restrict_vocabulary:
            job.allowed_token_ids = answer_vocabulary(tokenizer, encoder, ending.end_token_ids)
            log(f"restricted vocabulary: decoding writes only the {len(job.allowed_token_ids)} tokens of the "
                f"{settings.format.encoder} format and the end of turn")
    if uses_judge(settings.selection.selector):
        job.judge_scores_planned = len(job.plans) * settings.selection.judge_top_k * settings.selection.judge_views
    return job


def generate_rounds(job: "_Job") -> str:
    """Every round that fits the time budget; returns the run's status. No failure escapes: the
    engine's, a bug's and SIGTERM each end generation with a status saying whose it was."""
    log, predictions = job.log, job.predictions
    status = "done"
    total_rounds = rounds_needed(job.settings.views.augmentations, job.settings.budget.views_per_round)
    try:
        with sigterm_raises():
            for number in range(1, total_rounds + 1):
                if job.round(number, total_rounds):
                    status = "time budget reached"
                    break
            if status == "done" and job.lost["lost"]:
                # the last round's lost prompts have no later round: one more pass over what is undone
                if job.round(total_rounds, total_rounds):
                    status = "time budget reached"
            undone = len(job.undone(total_rounds)) if status == "done" else 0
            if undone:
                status = f"incomplete: {undone} prompts lost by the engine"
                log(f"run: {undone} prompts are still without an answer after every retry (see the engine lines "
                    "above); a re-run on the same folder resumes them")
    except Terminated:
        status = "stopped by SIGTERM"
        log("run: SIGTERM received; writing the submission from the predictions made so far")
    except Exception as exc:  # any failure must not cost the submission; the log says whose it was
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        if isinstance(exc, EngineFailure):
            status = f"engine failed: {exc}"
            log(f"run: the engine failed ({first_line}); "
                f"writing the submission from the {len(predictions)} predictions made so far")
        else:
            origin = failure_origin(exc)
            status = f"internal error: {type(exc).__name__}: {first_line} ({origin})"
            log(f"run: internal error, a bug of this program, not of the engine: {type(exc).__name__}: "
                f"{first_line} at {origin}; writing the submission from the {len(predictions)} predictions "
                f"made so far\n" + "".join(traceback.format_exception(exc)).rstrip())
    return status


def judge_candidates(job: "_Job", status: str) -> tuple[dict | None, dict | None]:
    """Judge selectors: the candidates scored by the model in the time left (votes alone when the
    run ended in failure, or the judge fails); returns the scores and run.json's record of them."""
    settings, deadline = job.settings, job.deadline
    if not uses_judge(settings.selection.selector) or status not in ("done", "time budget reached"):
        return None, None
    with job.clock.stage("judge"):
        return judge_for_run(
            job.challenges, job.predictions, settings, job.out_dir / JUDGE_CACHE,
            Scorer(job.engine, job.tokenizer, job.adapters), _judge_model(job.model, job.adapters), job.log,
            deadline=deadline.at - min(FINAL_WRITES_SECONDS, settings.budget.reserve_seconds / 2) if deadline else None,
            seconds_per_score=JUDGE_SCORE_PER_PROMPT * job.speed.per_prompt() if job.speed.prompts else None)


def close_record(job: "_Job", status: str, metrics: dict | None, judge_record: dict | None, started: float) -> dict:
    """run.json's final record: the status and what the run did and cost."""
    predictions = job.predictions
    parsed = sum(p.grid is not None for p in predictions)
    job.log(f"predictions: {len(predictions)} in {job.out_dir / 'predictions.jsonl'}, {parsed} parsed to a grid; "
            f"status: {status}")
    job.record.update({
        "status": status,
        "rounds": job.rounds,
        "prompts_sent": job.speed.prompts,
        "engine_lost_prompts": job.lost,
        "predictions": len(predictions),
        "parsed": parsed,
        "stage_seconds": job.clock.seconds,
        "seconds": round(time.monotonic() - started, 2),
        "score": metrics["overall"]["score"] if metrics else None,
        "judge": judge_record,
        "dfs": job.dfs_stats.as_dict() if job.settings.generation.mode == "dfs" else None,
        "prompt_tokens": job.tokenizer.describe() if hasattr(job.tokenizer, "describe") else None,
    })
    write_json_atomic(job.out_dir / "run.json", job.record)
    return job.record


def _judge_model(model: str | None, adapters: dict[str, str] | None) -> str | None:
    """The model name judge scores are cached under: scores through test-time adapters are not the base model's."""
    return f"{model} + test-time adapters" if model and adapters else model


@dataclass
class Throughput:
    """What generation has cost so far in this run: the base of time fitting and ETAs."""

    prompts: int = 0
    completions: int = 0
    seconds: float = 0.0

    def add(self, prompts: int, completions: int, seconds: float) -> None:
        self.prompts += prompts
        self.completions += completions
        self.seconds += seconds

    def per_completion(self) -> float | None:
        return self.seconds / self.completions if self.completions else None

    def per_prompt(self) -> float:
        return self.seconds / max(self.prompts, 1)


@dataclass
class _Job:
    """run()'s state across rounds; ``round`` is one round: plan, prompts, chunks, submission."""

    challenges: Challenges
    engine: Engine
    tokenizer: object
    settings: RunSettings
    out_dir: Path
    deadline: Deadline | None
    log: object
    predictions: list[Prediction]  # recorded so far, resumed ones included; grows as chunks land
    plans: dict[TestKey, list[Augmentation]]
    clock: StageClock = field(default_factory=StageClock)
    budgets: dict[str, int] = field(default_factory=dict)  # answer tokens per task
    speed: Throughput = field(default_factory=Throughput)
    rounds: list[dict] = field(default_factory=list)  # summaries for run.json
    judge_scores_planned: int = 0  # judge selectors: the (candidate, view) scores to leave time for
    lost: dict = field(default_factory=lambda: {"lost": 0, "retried": 0})  # prompts the engine lost, for run.json
    ending: Ending | None = None  # dfs mode: where a token path ends, and its text
    dfs_stats: DfsStats = field(default_factory=DfsStats)
    adapters: dict[str, str] = field(default_factory=dict)  # task id -> LoRA folder (test-time fine-tuning)
    allowed_token_ids: tuple[int, ...] = ()  # --restrict-vocabulary: the answer format's tokens
    record: dict = field(default_factory=dict)  # what run.json holds
    model: str | None = None  # the model folder (run.json's inputs)
    submission: dict | None = None  # what submission.json holds, written by the last round
    submission_of: int = -1  # how many predictions it was built from (the list only grows)

    def __post_init__(self):
        self.done = {p.key for p in self.predictions}

    def judge_seconds(self) -> float:
        """Time kept back from generation for the judge, at the generation speed measured so far."""
        return self.judge_scores_planned * JUDGE_SCORE_PER_PROMPT * self.speed.per_prompt()

    @property
    def generation_deadline(self) -> Deadline | None:
        if self.deadline is None or not self.judge_scores_planned:
            return self.deadline
        return replace(self.deadline, reserve=self.deadline.reserve + self.judge_seconds())

    def round(self, number: int, total: int) -> bool:
        """Run round ``number``; True when the time budget cut it (no later round will fit)."""
        settings, started = self.settings, time.monotonic()
        items = self.undone(number)
        if not items:
            return False
        deadline = self.generation_deadline
        left = deadline.left() if deadline else float("inf")
        planned = len(items)
        items = fit_to_time(items, settings.generation.completions_per_prompt, self.speed.per_completion(), left)
        if not items or left <= 0:
            self.log(f"round {number}: skipped, {max(left, 0):.0f}s left is not enough for its {planned} prompts")
            return True
        prompts, new, unfinished = self._generate(items)
        with self.clock.stage("select"):
            self.submission = build_submission(self.challenges, self.predictions,
                                               get_selector(settings.selection.selector))
            self.submission_of = len(self.predictions)
            write_json_atomic(self.out_dir / "submission.json", self.submission)
        seconds = time.monotonic() - started
        self.rounds.append({"round": number, "planned": planned, "prompts": prompts, "new_predictions": new,
                            "unfinished": unfinished, "seconds": round(seconds, 2)})
        deadline = self.generation_deadline
        left = deadline.left() if deadline else None
        self.log(f"round {number}/{total}: {prompts} of {planned} prompts, {new} predictions in {seconds:.1f}s"
                 + (f", {left:.0f}s left" if left is not None else "")
                 + (f" (after {self.judge_seconds():.0f}s kept for the judge's {self.judge_scores_planned} scores)"
                    if left is not None and self.judge_scores_planned else "")
                 + f", ETA of the remaining views {self._eta_seconds():.0f}s; submission.json updated")
        if unfinished or planned > len(items):
            self.log(f"round {number}: cut by the time budget ({unfinished + planned - len(items)} prompts not done)")
            return True
        return False

    def _generate(self, items: list[WorkItem]) -> tuple[int, int, int]:
        """Prompts for ``items`` sent in chunks, each chunk's predictions appended as it lands;
        returns (prompts built, new predictions, prompts not generated)."""
        settings = self.settings
        with self.clock.stage("prompts"):
            ready, misses = prepare_requests(self.challenges.tasks, items, self.tokenizer, self.engine.max_model_len,
                                             settings, self.log, self.budgets, self.adapters, self.allowed_token_ids)
        new = self._record(misses)
        size = settings.budget.chunk_prompts
        if settings.generation.mode == "beam":
            size = min(size, BEAM_CHUNK_PROMPTS)
        for start in range(0, len(ready), size):
            chunk = ready[start : start + size]
            if not self._fits(chunk):
                return len(ready), new, len(ready) - start
            pending = chunk
            for attempt in range(LOST_RETRIES + 1):
                t0, deadline = time.monotonic(), self.generation_deadline
                with self.clock.stage("generate"):
                    made, lost = generate_predictions(self.engine, pending, settings,
                                                      deadline.generation_ends() if deadline else None,
                                                      self.ending, self.dfs_stats)
                # a dfs prompt's time is that of all its candidates: time fitting counts it as one
                done = len(pending) - len(lost) if settings.generation.mode == "dfs" else len(made)
                self.speed.add(len(pending), done, time.monotonic() - t0)
                with self.clock.stage("record"):
                    new += self._record(made)
                if not lost:
                    break
                if deadline is not None and deadline.left() <= 0:  # aborted at the deadline: a budget stop
                    return len(ready), new, len(lost) + len(ready) - start - len(chunk)
                # Lost with a worker (or an engine hiccup) while time is left: send them again, to the
                # workers still alive; what is still lost after the retries waits for the next round.
                self.lost["lost"] += len(lost)
                if attempt < LOST_RETRIES:
                    self.lost["retried"] += len(lost)
                    self.log(f"engine: {len(lost)} prompts came back without an answer (not the time budget); "
                             f"sending them again (retry {attempt + 1} of {LOST_RETRIES})")
                pending = lost
            else:
                self.log(f"engine: {len(pending)} prompts still without an answer after {LOST_RETRIES} retries; "
                         "later rounds try them again")
        return len(ready), new, 0

    def _fits(self, chunk: list) -> bool:
        """Whether to send the next chunk: time is left, and in beam mode (which cannot be
        aborted) the throughput so far says the chunk ends in time."""
        deadline = self.generation_deadline
        if deadline is None:
            return True
        left = deadline.left()
        rate = self.speed.per_completion()
        if self.settings.generation.mode == "beam" and rate is not None:
            return rate * len(chunk) * self.settings.generation.completions_per_prompt <= left
        return left > 0

    def _record(self, new: list[Prediction]) -> int:
        """Append the predictions whose work item is not recorded yet; returns how many."""
        fresh = [p for p in new if p.key not in self.done]
        append_predictions(self.out_dir / "predictions.jsonl", fresh)
        self.predictions.extend(fresh)
        self.done.update(p.key for p in fresh)
        return len(fresh)

    def undone(self, round_number: int) -> list[WorkItem]:
        """Work of rounds up to ``round_number`` not recorded yet (settled test inputs excepted)."""
        budget = self.settings.budget
        return round_items(self.plans, self.done, group_by_test_input(self.predictions), round_number,
                           budget.views_per_round, self.settings.completions_per_prompt, budget.adaptive,
                           budget.settle_after)

    def _eta_seconds(self) -> float:
        """Time the views not generated yet would take at the throughput measured so far."""
        views_done = len({key[:3] for key in self.done})  # (task, test, augmentation)
        return (sum(len(plan) for plan in self.plans.values()) - views_done) * self.speed.per_prompt()


def reselect(challenges: Challenges, predictions_path: Path, out_dir: Path, selector: str,
             solutions_path: Path | None, log=print, judge_scores: dict | None = None) -> dict | None:
    """``select``: rebuild submission.json (and metrics) from a saved predictions file alone
    (judge methods: with scores from judge.py, read from its cache)."""
    predictions = list(read_predictions(predictions_path))
    log(f"read {len(predictions)} predictions from {predictions_path}")
    return finish(challenges, predictions, out_dir, selector, solutions_path, log, judge_scores)
