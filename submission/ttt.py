"""Test-time fine-tuning: a LoRA adapter per test task (or one shared), trained on the task's own
train pairs before inference, inside the run's time budget.

Data: leave-one-out tasks. Each train pair in turn is the "test" and the other pairs are its
examples; every such task is seen through random views of the pipeline's augmentations and
rendered by finetune.py, i.e. by the pipeline's own prompt code, with the loss on the answer
tokens (and on every train output after the first, as the demo model was trained).

Training runs in a child process (``train_in_child``): on a GPU its memory must be free again
before vLLM starts, and a crash in training must cost the adapters only, never the run. Several
GPUs get one child each, with the tasks shared out. Each adapter is saved (peft's
``save_pretrained``, then renamed into place, so a folder that exists is whole) as soon as it is
trained; a resumed run reuses the saved ones. The training time is planned: after the first
adapter the measured seconds per step say how many steps the remaining tasks can have before
the training deadline; tasks that would get fewer than ``min_steps`` get no adapter and are
predicted by the base model.

Inference serves the base model with every adapter in one vLLM engine: each request names its
task's adapter folder (engine.GenerationRequest.lora), so all tasks' prompts still go out together.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .finetune import (TrainSettings, TrainingExample, augmented_example, batch_by_tokens, make_optimizer,
                       optimizer_step, pad_batch, random_augmentation)
from .encoders import get_encoder
from .prompts import Unanswerable, get_template, load_tokenizer
from .settings import PromptFormat, TttSettings
from .tasks import Task

SHARED = "_shared"  # the adapter folder name of shared mode
RECORD = "ttt.json"  # beside each adapter: how it was trained
# peft's names of Qwen2's (and Llama's) projections; vLLM serves LoRA on all of them
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class AdapterJob:
    """What every adapter of a run is trained from: the base model, the settings, the run's prompt
    format (an adapter learns the text it will be asked in; ``max_model_len`` already capped at the
    model's own), where the adapters go, the seed, the deadline (time.monotonic()) and the tasks
    left to the base model (``skip``)."""

    model_dir: str
    settings: TttSettings
    format: PromptFormat
    out_dir: Path
    seed: int = 0
    deadline: float | None = None
    skip: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Adapter:
    """A trained adapter: its folder and how it was made (what run.json records)."""

    name: str  # the task id, or SHARED
    path: str
    rank: int
    steps: int
    seconds: float
    examples: int
    loss_first: float | None  # mean training loss of the first and last steps
    loss_last: float | None

    @classmethod
    def read(cls, folder: Path) -> "Adapter | None":
        """The adapter saved in ``folder``, or None when there is none (or it is not whole)."""
        try:
            record = json.loads((folder / RECORD).read_text())
            if not (folder / "adapter_config.json").is_file():
                return None
            return cls(**{**record, "path": str(folder)})
        except (OSError, ValueError, TypeError):
            return None


# -- data -----------------------------------------------------------------------------------------


def leave_one_out(task: Task) -> list[tuple[Task, np.ndarray]]:
    """For each train pair, the task whose test input is that pair's input and whose examples are
    the other pairs, with that pair's output as the answer. Tasks of one train pair give none."""
    if len(task.train) < 2:
        return []
    made = []
    for i, held in enumerate(task.train):
        others = tuple(ex for j, ex in enumerate(task.train) if j != i)
        made.append((Task(f"{task.id}/loo{i}", others, (held.input,)), held.output))
    return made


def ttt_examples(tokenizer, template, encoder, tasks: list[Task], count: int, rng: np.random.Generator,
                 max_len: int, permute_background: bool = False) -> list[TrainingExample]:
    """``count`` training examples: the tasks' leave-one-out tasks in turn, each through a fresh
    random view. Views that do not fit ``max_len`` are skipped; empty when nothing is trainable."""
    pool = [pair for task in tasks for pair in leave_one_out(task)]
    if not pool:
        return []
    made, tries = [], 0
    while len(made) < count and tries < 4 * count:
        loo, answer = pool[tries % len(pool)]
        tries += 1
        view = random_augmentation(rng, len(loo.train), permute_background)
        try:
            made.append(augmented_example(tokenizer, template, encoder, loo, answer, view, max_len))
        except Unanswerable:
            continue
    return made


# -- planning -------------------------------------------------------------------------------------


def plan_steps(settings: TttSettings, seconds_per_step: float | None, adapters_left: int,
               seconds_left: float) -> int:
    """Steps the next adapter gets: ``settings.steps`` while the measured speed says every adapter
    still to train fits the time left at that many, fewer when not, 0 below ``min_steps``."""
    if seconds_left <= 0 or adapters_left < 1:
        return 0
    if seconds_per_step is None or seconds_left == float("inf"):
        return settings.steps  # nothing measured yet: the first adapter measures the speed
    fitting = math.floor(seconds_left / (adapters_left * max(seconds_per_step, 1e-9)))
    steps = min(settings.steps, fitting)
    if steps >= settings.min_steps:
        return steps
    # not every adapter fits at min_steps: the next one still does if it alone fits
    return settings.min_steps if seconds_left >= settings.min_steps * seconds_per_step else 0


# -- training -------------------------------------------------------------------------------------


def save_adapter(model, folder: Path, record: dict) -> None:
    """peft's save_pretrained and the record beside it, renamed into place: a folder that exists is whole."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    (tmp / RECORD).write_text(json.dumps(record, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def train_adapter(model, examples: list[TrainingExample], settings: TttSettings, steps: int, pad_id: int,
                  device: str, deadline: float | None = None, seed: int = 0) -> tuple[int, list[float]]:
    """Train the model's (fresh) LoRA weights for ``steps`` steps of ``examples_per_step`` examples
    each (cycling through ``examples``); stops early at ``deadline`` (time.monotonic()). Returns the
    steps done and each step's loss. bfloat16 autocast where the device has it (not a T4)."""
    import torch

    bf16 = torch.device(device).type != "cuda" or torch.cuda.is_bf16_supported()
    train_settings = TrainSettings(steps=steps, learning_rate=settings.learning_rate,
                                   min_learning_rate=settings.learning_rate / 10, warmup_steps=max(1, steps // 10),
                                   weight_decay=0.0, seed=seed, bf16=bf16)
    optimizer = make_optimizer(model, train_settings, device)
    model.train()
    losses = []
    per = settings.examples_per_step
    for step in range(steps):
        if deadline is not None and time.monotonic() >= deadline:
            break
        chosen = [examples[(step * per + k) % len(examples)] for k in range(per)]
        micro = [pad_batch(group, pad_id) for group in batch_by_tokens(chosen, settings.micro_tokens)]
        losses.append(optimizer_step(model, optimizer, micro, train_settings.learning_rate_at(step), train_settings,
                                     device))
    return len(losses), losses


def train_adapters(job: AdapterJob, tasks: list[Task], log=print, device: str | None = None,
                   trainer: Callable = train_adapter,
                   clock: Callable[[], float] = time.monotonic) -> dict[str, Adapter]:
    """Adapters for ``tasks`` (task mode: one each; shared mode: one for all) saved under
    ``job.out_dir``; saved ones are reused, ``job.skip`` names tasks to leave to the base model.
    Training stops at ``job.deadline`` (``clock()``, time.monotonic by default); what is not trained
    by then keeps the base model. ``trainer`` is train_adapter (a double in tests)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    settings, out_dir, deadline = job.settings, job.out_dir, job.deadline
    out_dir.mkdir(parents=True, exist_ok=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    encoder, template = get_encoder(job.format.encoder), get_template(job.format.template)
    units = [(SHARED, tasks)] if settings.mode == "shared" else [(t.id, [t]) for t in tasks]
    adapters: dict[str, Adapter] = {}
    todo = []
    for name, members in units:
        saved = Adapter.read(out_dir / name)
        if saved is not None:
            adapters[name] = saved
        elif any(len(t.train) >= 2 for t in members) and name not in job.skip:
            todo.append((name, members))
    if adapters:
        log(f"ttt: {len(adapters)} adapter(s) already in {out_dir}; reused")
    if not todo:
        return adapters
    tokenizer = load_tokenizer(job.model_dir, log=lambda _: None)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    base = AutoModelForCausalLM.from_pretrained(job.model_dir, dtype=torch.float32).to(device)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=0.0,
                        target_modules=list(TARGET_MODULES), task_type="CAUSAL_LM")
    step_seconds: list[float] = []
    started = clock()
    log(f"ttt: training {len(todo)} adapter(s) (rank {settings.rank}, up to {settings.steps} steps of "
        f"{settings.examples_per_step} examples) on {device}"
        + (f", {deadline - started:.0f}s for it" if deadline is not None else ""))
    for number, (name, members) in enumerate(todo, 1):
        left = deadline - clock() if deadline is not None else float("inf")
        per_step = sum(step_seconds) / len(step_seconds) if step_seconds else None
        steps = plan_steps(settings, per_step, len(todo) - number + 1, left)
        if steps == 0:
            log(f"ttt: {len(todo) - number + 1} adapter(s) not trained: the training time is spent "
                f"({per_step or 0:.2f}s per step); their tasks use the base model")
            break
        rng = np.random.default_rng([job.seed, number])
        examples = ttt_examples(tokenizer, template, encoder, members, steps * settings.examples_per_step, rng,
                                job.format.max_model_len)
        if not examples:
            log(f"ttt: {name}: no leave-one-out example fits the context; base model")
            continue
        model = get_peft_model(base, config)
        t0 = clock()
        done, losses = trainer(model, examples, settings, steps, pad_id, device, deadline, job.seed)
        seconds = clock() - t0
        if done:
            step_seconds.append(seconds / done)
        if done < settings.min_steps:
            log(f"ttt: {name}: stopped by the deadline after {done} steps; base model")
            break
        record = {"name": name, "rank": settings.rank, "steps": done, "seconds": round(seconds, 2),
                  "examples": len(examples), "loss_first": round(losses[0], 4), "loss_last": round(losses[-1], 4)}
        save_adapter(model, out_dir / name, record)
        base = model.unload()  # the base weights without the LoRA layers, for the next adapter
        adapters[name] = Adapter(**record, path=str(out_dir / name))
        log(f"ttt: {number}/{len(todo)} {name}: {done} steps in {seconds:.1f}s, loss {losses[0]:.3f} -> "
            f"{losses[-1]:.3f}")
    return adapters


def adapter_for_task(adapters: dict[str, Adapter], task_id: str) -> str:
    """The adapter folder a task's requests name ("" = base model)."""
    chosen = adapters.get(task_id) or adapters.get(SHARED)
    return chosen.path if chosen else ""


# -- the child process ------------------------------------------------------------------------------


def _child(job: AdapterJob, tasks: list[Task], devices: str | None, index: int | None) -> None:
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices  # before torch is imported

    def log(message: str) -> None:
        print(f"[ttt {index}] {message}" if index is not None else message, flush=True)

    if devices is not None:
        log(f"GPU {devices}: {len(tasks)} task(s) to train")
    train_adapters(job, tasks, log)


def train_in_child(job: AdapterJob, tasks: list[Task], log=print, gpus: int = 0,
                   grace_seconds: float = 60.0) -> dict[str, Adapter]:
    """``train_adapters`` in spawned processes (one per GPU, tasks shared out; one on CPU); returns
    the adapters on disk when they end. A child still running ``grace_seconds`` after the deadline
    is killed; a child that fails costs its adapters only (the log says so)."""
    context = mp.get_context("spawn")
    workers = max(1, gpus) if job.settings.mode == "task" else 1
    shares = [tasks[i::workers] for i in range(workers)]
    processes = []
    for i, share in enumerate(shares):
        if not share:
            continue
        process = context.Process(target=_child, args=(job, share, str(i) if gpus else None,
                                                       i if workers > 1 else None))
        process.start()
        processes.append(process)
    for process in processes:
        timeout = None if job.deadline is None else max(0.0, job.deadline + grace_seconds - time.monotonic())
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            log(f"ttt: a training process overran the deadline by {grace_seconds:.0f}s and was stopped")
        elif process.exitcode:
            log(f"ttt: a training process failed (exit code {process.exitcode}); its tasks use the base model")
    return read_adapters(job.out_dir)


def read_adapters(out_dir: Path) -> dict[str, Adapter]:
    """Every whole adapter saved under ``out_dir``, by name."""
    if not out_dir.is_dir():
        return {}
    found = (Adapter.read(folder) for folder in sorted(out_dir.iterdir()) if folder.is_dir())
    return {a.name: a for a in found if a is not None}


def ttt_record(settings: TttSettings, adapters: dict[str, Adapter], tasks: int, seconds: float) -> dict:
    """What run.json records of test-time fine-tuning."""
    return {"settings": asdict(settings), "seconds": round(seconds, 2), "tasks": tasks,
            "adapters": {name: {k: v for k, v in asdict(a).items() if k not in ("name",)}
                         for name, a in adapters.items()}}
