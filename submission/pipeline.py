"""The main job: challenges -> augmented prompts -> one engine call -> predictions -> submission.

Stages, each timed into run.json: load, plan+prompts, generate, parse+record, select+write,
evaluate. The engine is passed in (built by the caller), so tests can drive the same pipeline
with a double and the real vLLM engine alike.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .augment import Augmentation, plan_augmentations
from .encoders import get_encoder, stop_strings
from .engine import Engine, GenerationRequest
from .metrics import evaluate, format_table
from .predictions import Prediction, append_predictions, read_predictions, to_prediction, unanswerable
from .prompts import Unanswerable, answer_token_budget, build_prompt, get_template
from .select import get_selector
from .submit import build_submission, fallback_submission, write_json_atomic
from .tasks import Challenges, Task, load_solutions


@dataclass(frozen=True)
class RunSettings:
    augmentations: int = 8  # views per test input: the 8 dihedral ones first
    samples: int = 1  # completions per prompt
    temperature: float = 0.0  # 0 is greedy
    seed: int = 0
    encoder: str = "shape-row-numbers"
    template: str = "output-from-examples-v1"
    permute_background: bool = False
    shuffle_order: bool = True
    selector: str = "vote"
    max_tokens: int | None = None  # cap on the per-task answer budget

    def __post_init__(self):
        if self.augmentations < 1 or self.samples < 1:
            raise ValueError("augmentations and samples must be at least 1")
        if self.temperature == 0 and self.samples > 1:
            raise ValueError("greedy decoding (temperature 0) gives one sample per prompt; set --temperature > 0")
        get_encoder(self.encoder), get_template(self.template), get_selector(self.selector)  # fail early


@dataclass(frozen=True)
class WorkItem:
    """One prompt: a test input of a task seen through one augmentation."""

    task_id: str
    test_index: int
    augmentation: Augmentation


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


def plan_work(tasks: dict[str, Task], settings: RunSettings) -> list[WorkItem]:
    return [
        WorkItem(task.id, i, aug)
        for task in tasks.values()
        for i in range(len(task.test_inputs))
        for aug in plan_augmentations(
            task, i, settings.augmentations, settings.seed, settings.permute_background, settings.shuffle_order
        )
    ]


def prepare_requests(
    tasks: dict[str, Task], items: list[WorkItem], tokenizer, max_model_len: int, settings: RunSettings, log=print
) -> tuple[list[tuple[WorkItem, GenerationRequest]], list[Prediction]]:
    """Prompts for the items that fit the context, and recorded misses for those that do not."""
    encoder, template = get_encoder(settings.encoder), get_template(settings.template)
    stop = tuple(stop_strings(encoder))
    budgets: dict[str, int] = {}
    ready, misses = [], []
    for item in items:
        task = tasks[item.task_id]
        if item.task_id not in budgets:
            budgets[item.task_id] = answer_token_budget(tokenizer, encoder, task)
            if settings.max_tokens:
                budgets[item.task_id] = min(budgets[item.task_id], settings.max_tokens)
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
                for s in range(settings.samples)
            )
            continue
        if prompt.examples_dropped:
            log(f"task {item.task_id}: test[{item.test_index}] view {item.augmentation}: "
                f"dropped {prompt.examples_dropped} train example(s) to fit the context")
        ready.append((item, GenerationRequest(
            prompt.token_ids, answer_tokens, settings.samples, settings.temperature,
            _request_seed(settings.seed, item), stop,
        )))
    return ready, misses


def _request_seed(seed: int, item: WorkItem) -> int:
    # A seed per prompt makes its samples reproducible whatever else is in the batch.
    digest = hashlib.blake2b(f"{seed}|{item.task_id}|{item.test_index}|{item.augmentation}".encode(), digest_size=4)
    return int.from_bytes(digest.digest(), "little")


def generate_predictions(
    engine: Engine, ready: list[tuple[WorkItem, GenerationRequest]], settings: RunSettings
) -> list[Prediction]:
    encoder = get_encoder(settings.encoder)
    mode = "greedy" if settings.temperature == 0 else "sample"
    outputs = engine.generate([request for _, request in ready])
    if len(outputs) != len(ready):
        raise RuntimeError(f"engine returned {len(outputs)} results for {len(ready)} prompts")
    predictions = []
    for (item, _), completions in zip(ready, outputs):
        for s, c in enumerate(completions):
            predictions.append(to_prediction(
                encoder, item.task_id, item.test_index, item.augmentation, s,
                c.text, c.cumulative_logprob, c.token_count, c.finish_reason, mode,
            ))
    return predictions


def finish(
    challenges: Challenges, predictions: list[Prediction], out_dir: Path, selector: str,
    solutions_path: Path | None, log=print,
) -> dict | None:
    """Select and write submission.json; with solutions, write and print metrics.json."""
    submission = build_submission(challenges, predictions, get_selector(selector))
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


def run(
    challenges: Challenges,
    engine: Engine,
    tokenizer,
    out_dir: Path,
    settings: RunSettings,
    inputs: dict,
    solutions_path: Path | None = None,
    log=print,
) -> dict:
    """The whole job; returns what run.json holds."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = StageClock()
    write_json_atomic(out_dir / "submission.json", fallback_submission(challenges))  # never end without one
    predictions_path = out_dir / "predictions.jsonl"
    predictions_path.unlink(missing_ok=True)

    with clock.stage("plan_and_prompts"):
        items = plan_work(challenges.tasks, settings)
        ready, misses = prepare_requests(challenges.tasks, items, tokenizer, engine.max_model_len, settings, log)
    log(f"plan: {len(challenges.tasks)} tasks, {len(items)} prompts ({len(ready)} fit the context), "
        f"{settings.samples} sample(s) each")
    with clock.stage("generate"):
        predictions = generate_predictions(engine, ready, settings) if ready else []
    with clock.stage("record"):
        predictions += misses
        append_predictions(predictions_path, predictions)
    parsed = sum(p.grid is not None for p in predictions)
    log(f"predictions: {len(predictions)} written to {predictions_path}, {parsed} parsed to a grid")
    with clock.stage("select_and_evaluate"):
        metrics = finish(challenges, predictions, out_dir, settings.selector, solutions_path, log)
    record = {
        "inputs": inputs,
        "settings": asdict(settings),
        "engine": engine.describe(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "tasks": len(challenges.tasks),
        "bad_tasks": [str(p) for p in challenges.problems],
        "prompts": len(items),
        "predictions": len(predictions),
        "parsed": parsed,
        "stage_seconds": clock.seconds,
        "score": metrics["overall"]["score"] if metrics else None,
    }
    write_json_atomic(out_dir / "run.json", record)
    return record


def reselect(challenges: Challenges, predictions_path: Path, out_dir: Path, selector: str,
             solutions_path: Path | None, log=print) -> dict | None:
    """``select``: rebuild submission.json (and metrics) from a saved predictions file alone."""
    predictions = list(read_predictions(predictions_path))
    log(f"read {len(predictions)} predictions from {predictions_path}")
    return finish(challenges, predictions, out_dir, selector, solutions_path, log)
