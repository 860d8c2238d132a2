"""The demo model's training loop, over submission/finetune.py's examples and optimizer steps.

It follows nanoGPT's: settings at the top, a cosine learning rate with warm-up, held-out loss and
exact-answer rate every ``eval_every`` steps, a checkpoint (model, optimizer, step, settings) that
``train`` resumes from, a progress bar with loss, tokens/s and ETA, and a log
(``train_log.jsonl``) with its loss curve (``loss_curve.svg``) beside the result. Development code:
the kernel never trains this way (test-time fine-tuning is submission/ttt.py).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from submission.finetune import (IGNORE, TrainingExample, TrainSettings, batch_by_tokens, make_optimizer, optimizer_step,
                                 pad_batch)
from submission.prompts import FORMAT_FILE
from submission.submit import write_json_atomic


CHECKPOINT = "checkpoint.pt"
LOG = "train_log.jsonl"


def evaluate_batches(model, batches: list[dict], device, bf16: bool) -> dict:
    """Mean loss per answer token, and the share of examples whose test answer the model would write
    exactly under greedy decoding (teacher-forced argmax equal to every answer token)."""
    import torch

    model.eval()
    total_loss = total_tokens = exact = examples = 0.0
    with torch.no_grad():
        for batch in batches:
            b = {k: torch.as_tensor(v, device=device) for k, v in batch.items() if k != "answer_start"}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            logits, labels = logits[:, :-1].float(), b["labels"][:, 1:]
            counted = labels != IGNORE
            loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
            total_loss += float((loss * counted).sum())
            total_tokens += float(counted.sum())
            right = (logits.argmax(-1) == labels) | ~counted
            positions = torch.arange(labels.shape[1], device=device)[None, :]
            answer = positions >= torch.as_tensor(batch["answer_start"], device=device)[:, None] - 1
            exact += float((right | ~answer).all(dim=1).sum())
            examples += labels.shape[0]
    model.train()
    return {"loss": total_loss / max(total_tokens, 1), "exact": exact / max(examples, 1)}


def eval_batches(examples: list[TrainingExample], pad_id: int, tokens_per_batch: int) -> list[dict]:
    out = []
    for group in batch_by_tokens(examples, tokens_per_batch):
        batch = pad_batch(group, pad_id)
        batch["answer_start"] = np.asarray([e.prompt_tokens for e in group])
        out.append(batch)
    return out


def fit_steps(step: int, seconds_per_step: float, seconds_left: float, requested: int) -> int:
    """The schedule's length in steps so that it ends when the time does, at most ``requested``."""
    return min(requested, max(step + 1, step + int(seconds_left / max(seconds_per_step, 1e-9))))


def train(
    model,
    batches: Callable[[int], Iterator[list[dict]]],
    settings: TrainSettings,
    out_dir: str | Path,
    heldout: list[dict] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = print,
    stop_after_seconds: float | None = None,
    time_limit: float | None = None,
    clock: Callable[[], float] = time.time,
) -> dict:
    """Train ``model`` for ``settings.steps`` steps on ``batches(start_step)`` (a stream, from that
    step on, of each step's padded micro-batches), resuming from ``out_dir/checkpoint.pt`` when it is there.

    Returns a summary (steps, seconds, tokens, the last held-out figures, the settings). The checkpoint is
    rewritten atomically every ``checkpoint_every`` steps and at the end; ``stop_after_seconds``
    ends early (with a checkpoint, the schedule unchanged: resume goes on). ``time_limit`` instead
    shortens the schedule itself so the run ends annealed in that time: fitted after 20 measured steps,
    then again every 50 steps while in the first half of the schedule, each time at the speed of the
    steps since the last fit (steps slow down after the first ones on a shared CPU, and evaluations and
    checkpoints cost time too).
    """
    import torch
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    model.to(device).train()
    torch.manual_seed(settings.seed)
    optimizer = make_optimizer(model, settings, device)
    step, tokens_seen, seconds_before = 0, 0, 0.0
    ckpt_path = out / CHECKPOINT
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step, tokens_seen, seconds_before = state["step"], state["tokens"], state["seconds"]
        if state["settings"]["steps"] != settings.steps:  # a schedule fitted to a time limit goes on as it was
            settings = replace(settings, steps=state["settings"]["steps"])
        log(f"resuming from {ckpt_path} at step {step} ({tokens_seen:,} tokens, {seconds_before:.0f} s so far)")

    def save_checkpoint(seconds: float) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                    "tokens": tokens_seen, "seconds": seconds, "settings": asdict(settings)}, tmp)
        os.replace(tmp, ckpt_path)

    log_file = (out / LOG).open("a")
    started = clock()
    last_eval: dict = {}
    window_loss, window_n, window_tokens, window_start = 0.0, 0, 0, clock()
    bar = tqdm(total=settings.steps, initial=step, unit="step", dynamic_ncols=True, mininterval=2.0)
    stream = batches(step)
    first_step = step
    fit_step, fit_time, requested = step, started, settings.steps
    try:
        while step < settings.steps:
            micro_batches = next(stream)  # one step: micro-batches of similar lengths, gradients summed
            lr = settings.learning_rate_at(step)
            step_loss = optimizer_step(model, optimizer, micro_batches, lr, settings, device)
            step += 1
            n_tokens = sum(int(mb["attention_mask"].sum()) for mb in micro_batches)
            tokens_seen += n_tokens
            window_tokens += n_tokens
            window_loss += step_loss
            window_n += 1
            if time_limit is not None and (step == first_step + 20 or (
                    step > first_step + 20 and (step - first_step) % 50 == 0 and step < settings.steps / 2)):
                # The schedule must end when the time does: fit the step count to the latest speed.
                now = clock()
                per_step = (now - fit_time) / (step - fit_step)
                fitted = fit_steps(step, per_step, time_limit - (now - started), requested)
                fit_step, fit_time = step, now
                if fitted != settings.steps:
                    settings = replace(settings, steps=fitted)
                    bar.total = settings.steps
                    log(f"{per_step:.2f} s per step: {settings.steps} steps fit in {time_limit:.0f} s")
            elapsed = seconds_before + clock() - started
            if step % 10 == 0 or step == settings.steps:
                rate = window_tokens / max(clock() - window_start, 1e-9)
                record = {"step": step, "loss": window_loss / window_n, "lr": lr, "tokens": tokens_seen,
                          "tokens_per_s": rate, "seconds": elapsed}
                bar.set_postfix(loss=f"{record['loss']:.3f}", tok_s=f"{rate:,.0f}", **(
                    {"heldout_exact": f"{last_eval['exact']:.2f}"} if last_eval else {}))
                log_file.write(json.dumps(record) + "\n")
                window_loss, window_n, window_tokens, window_start = 0.0, 0, 0, clock()
            bar.update(1)
            if heldout and (step % settings.eval_every == 0 or step == settings.steps):
                last_eval = evaluate_batches(model, heldout, device, settings.bf16)
                log_file.write(json.dumps({"step": step, "heldout_loss": last_eval["loss"],
                                           "heldout_exact": last_eval["exact"], "seconds": elapsed}) + "\n")
                log(f"step {step}: held-out loss {last_eval['loss']:.4f}, exact {last_eval['exact']:.1%}")
            log_file.flush()
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                save_checkpoint(elapsed)
            if stop_after_seconds is not None and clock() - started > stop_after_seconds:
                save_checkpoint(elapsed)
                log(f"stopping at step {step}: {stop_after_seconds:.0f} s of this session spent (resume to go on)")
                break
    finally:
        bar.close()
        log_file.close()
    elapsed = seconds_before + clock() - started
    write_loss_curve(out / LOG, out / "loss_curve.svg")
    return {"steps": step, "finished": step >= settings.steps, "seconds": round(elapsed, 1),
            "tokens": tokens_seen, "heldout": last_eval, "settings": asdict(settings)}


# -- the loss curve ----------------------------------------------------------------------------------


def read_log(path: str | Path) -> list[dict]:
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a kill
    return records


def write_loss_curve(log_path: str | Path, svg_path: str | Path, width: int = 640, height: int = 360) -> None:
    """The training loss (and held-out loss and exact rate) against steps, as a standalone SVG."""
    records = read_log(log_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    held = [(r["step"], r["heldout_loss"]) for r in records if "heldout_loss" in r]
    exact = [(r["step"], r["heldout_exact"]) for r in records if "heldout_exact" in r]
    if not train:
        return
    left, right, top, bottom = 60, 20, 20, 40
    max_step = max(s for s, _ in train + held) or 1
    losses = [v for _, v in train + held if v > 0]
    lo, hi = math.log10(min(losses)), math.log10(max(losses))
    hi = hi if hi > lo else lo + 1

    def xy(step, value, log_scale=True):
        x = left + (width - left - right) * step / max_step
        frac = (math.log10(max(value, 1e-9)) - lo) / (hi - lo) if log_scale else value
        return x, top + (height - top - bottom) * (1 - frac)

    def line(points, colour, log_scale=True):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(s, v, log_scale) for s, v in points))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>'

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>']
    for k in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** k
            if lo <= math.log10(v) <= hi:
                _, y = xy(0, v)
                parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
    parts.append(f'<text x="{width - right}" y="{height - 8}" text-anchor="end">step {max_step}</text>')
    parts.append(line(train, "#1f77b4"))
    if held:
        parts.append(line(held, "#d62728"))
    if exact:
        parts.append(line(exact, "#2ca02c", log_scale=False))
    parts.append(f'<text x="{left + 8}" y="{top + 12}" fill="#1f77b4">training loss per answer token (log)</text>')
    parts.append(f'<text x="{left + 8}" y="{top + 26}" fill="#d62728">held-out loss (log)</text>')
    parts.append(f'<text x="{left + 8}" y="{top + 40}" fill="#2ca02c">held-out exact answers (0-1, linear)</text>')
    parts.append("</svg>\n")
    Path(svg_path).write_text("\n".join(parts))


def write_format(model_dir: str | Path, encoder: str, template: str, **extra) -> None:
    """Record in a model folder the prompt format it was trained with (``run`` reads it)."""
    write_json_atomic(Path(model_dir) / FORMAT_FILE, {"encoder": encoder, "template": template, **extra})
