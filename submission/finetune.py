"""Fine-tuning data and steps: training examples rendered by the pipeline's own prompt code.

A training example is exactly the prompt ``build_prompt`` gives the engine for a (task, test
input, view), followed by the answer the model should write (the encoder's grid after its answer
start, then end of turn), token for token. Formats cannot drift between training and inference
because there is one renderer.

The loss counts answer tokens only: the test answer, and with ``loss_on="outputs"`` (the default)
also every train output after the first, each being the answer to the task cut before it (the
grids before it are its examples). Prompt text, inputs and the first output carry label -100.

Test-time fine-tuning (ttt.py) and the demo model's training loop (devkit/train_loop.py, not
shipped) share these examples, batches and optimizer steps. Only torch and transformers are used
(imported by the functions that need them): no model or optimiser of our own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from .augment import Augmentation
from .prompts import PromptTemplate, build_prompt
from .tasks import Task

IGNORE = -100  # label of a token the loss does not count
LOSS_ON = ("outputs", "answer")


# -- examples ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingExample:
    ids: np.ndarray  # int32 token ids: the prompt, then the answer
    labels: np.ndarray  # int32: the token where the loss counts it, IGNORE elsewhere
    prompt_tokens: int  # ids[:prompt_tokens] is exactly the pipeline's prompt

    @property
    def answer_tokens(self) -> int:
        return len(self.ids) - self.prompt_tokens


def _plain(tokenizer):
    """The Hugging Face tokenizer under the pipeline's PromptTokenizer (offsets need the plain one)."""
    return getattr(tokenizer, "tokenizer", tokenizer)


def training_example(
    tokenizer,
    template: PromptTemplate,
    encoder,
    task: Task,
    answer: np.ndarray,
    max_len: int,
    loss_on: str = "outputs",
) -> TrainingExample:
    """The pipeline's prompt for the task's first test input, then ``answer`` as the model writes it.

    Train examples are dropped (last first) as the pipeline drops them when the whole does not
    fit in ``max_len``; raises prompts.Unanswerable when not even one fits.
    """
    if loss_on not in LOSS_ON:
        raise ValueError(f"loss_on must be one of {LOSS_ON}, got {loss_on!r}")
    hf = _plain(tokenizer)
    answer_text = _answer_text(hf, template, encoder, task, answer)
    answer_ids = hf.encode(answer_text, add_special_tokens=False)
    prompt = build_prompt(tokenizer, template, encoder, task, 0, max_len, len(answer_ids))
    ids = np.asarray(list(prompt.token_ids) + answer_ids, dtype=np.int32)
    labels = np.full(len(ids), IGNORE, dtype=np.int32)
    labels[len(prompt.token_ids):] = ids[len(prompt.token_ids):]
    if loss_on == "outputs" and prompt.examples_used > 1:
        for start, end in _train_output_spans(prompt.text, encoder, task, prompt.examples_used):
            tokens = _token_span(hf, prompt.text, prompt.token_ids, start, end)
            labels[tokens] = ids[tokens]
    return TrainingExample(ids, labels, len(prompt.token_ids))


def _answer_text(hf, template: PromptTemplate, encoder, task: Task, answer: np.ndarray) -> str:
    """What follows the prompt: the rest of the encoded answer and the chat template's end of turn."""
    opening = template.answer_intro + encoder.answer_start
    full_answer = template.answer_intro + encoder.encode(answer)
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": full_answer}]
    text = hf.apply_chat_template(messages, tokenize=False)
    cut = text.rfind(full_answer)
    if cut < 0:
        raise ValueError("the chat template does not keep the assistant message verbatim")
    rest = text[cut + len(opening):]
    # End at the end-of-turn token: generation stops there, what the template adds after it is never written.
    eos = hf.eos_token or ""
    end = rest.find(eos, len(full_answer) - len(opening)) if eos else -1
    return rest[: end + len(eos)] if end >= 0 else rest


def _train_output_spans(text: str, encoder, task: Task, n_examples: int) -> list[tuple[int, int]]:
    """Character spans of the 2nd..nth train outputs in the prompt, after the encoder's answer start
    (the part the model writes when it answers)."""
    spans, pos = [], 0
    for i, ex in enumerate(task.train[:n_examples]):
        inp, out = encoder.encode(ex.input), encoder.encode(ex.output)
        pos = text.index(inp, pos) + len(inp)
        start = text.index(out, pos)
        pos = start + len(out)
        if i >= 1:
            spans.append((start + len(encoder.answer_start), pos))
    return spans


def _token_span(hf, text: str, token_ids: tuple[int, ...], start: int, end: int) -> np.ndarray:
    """Indices of the tokens lying inside text[start:end]."""
    enc = hf(text, add_special_tokens=False, return_offsets_mapping=True)
    if tuple(enc["input_ids"]) != tuple(token_ids):
        raise ValueError("the tokenizer's offsets do not describe the pipeline's prompt tokens")
    offsets = np.asarray(enc["offset_mapping"])
    return np.flatnonzero((offsets[:, 0] >= start) & (offsets[:, 1] <= end))


def augmented_example(tokenizer, template, encoder, task: Task, answer: np.ndarray, augmentation: Augmentation,
                      max_len: int, loss_on: str = "outputs") -> TrainingExample:
    """The training example of one view: the task and its answer through the pipeline's augmentation."""
    return training_example(tokenizer, template, encoder, augmentation.apply_task(task),
                            augmentation.apply_grid(answer), max_len, loss_on)


def random_augmentation(rng: np.random.Generator, n_train: int, permute_background: bool = False) -> Augmentation:
    """A view as the pipeline's plans make them: any dihedral transform, colours, example order."""
    if permute_background:
        colours = tuple(int(c) for c in rng.permutation(10))
    else:
        colours = (0,) + tuple(int(c) + 1 for c in rng.permutation(9))
    order = tuple(int(i) for i in rng.permutation(n_train)) if n_train > 1 else None
    return Augmentation(int(rng.integers(8)), colours, order)


# -- batches -------------------------------------------------------------------------------------


def pad_batch(examples: list[TrainingExample], pad_id: int) -> dict[str, np.ndarray]:
    """Right-padded input_ids / attention_mask / labels arrays for a list of examples."""
    length = max(len(e.ids) for e in examples)
    ids = np.full((len(examples), length), pad_id, dtype=np.int64)
    labels = np.full((len(examples), length), IGNORE, dtype=np.int64)
    mask = np.zeros((len(examples), length), dtype=np.int64)
    for i, e in enumerate(examples):
        ids[i, : len(e.ids)] = e.ids
        labels[i, : len(e.ids)] = e.labels
        mask[i, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def batch_by_tokens(examples: Iterable[TrainingExample], tokens_per_batch: int) -> list[list[TrainingExample]]:
    """Examples grouped by similar length into batches of at most ``tokens_per_batch`` padded tokens."""
    ordered = sorted(examples, key=lambda e: len(e.ids))
    batches, current = [], []
    for e in ordered:
        if current and len(e.ids) * (len(current) + 1) > tokens_per_batch:
            batches.append(current)
            current = []
        current.append(e)
    if current:
        batches.append(current)
    return batches


# -- the loop -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 1000
    learning_rate: float = 1e-3
    min_learning_rate: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    bf16: bool = True  # bfloat16 autocast (weights and optimizer stay float32)
    eval_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    extra: dict = field(default_factory=dict)  # what the caller wants recorded beside these

    def learning_rate_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps))
        return self.min_learning_rate + 0.5 * (1 + math.cos(math.pi * progress)) * (
            self.learning_rate - self.min_learning_rate)


def make_optimizer(model, settings: TrainSettings, device):
    """torch's AdamW over the trainable parameters (weight decay on matrices only)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.learning_rate, betas=(0.9, 0.95), fused=torch.device(device).type == "cuda",
    )


def optimizer_step(model, optimizer, micro_batches: list[dict], lr: float, settings: TrainSettings, device) -> float:
    """One optimizer step over a step's padded micro-batches (gradients summed, each micro-batch
    weighed by its share of the counted tokens); returns the step's loss per counted token."""
    import torch

    device = torch.device(device)
    for group in optimizer.param_groups:
        group["lr"] = lr
    counted = sum(int((mb["labels"][:, 1:] != IGNORE).sum()) for mb in micro_batches)
    step_loss = 0.0
    for mb in micro_batches:
        b = {k: torch.as_tensor(mb[k]).to(device, non_blocking=True) for k in ("input_ids", "attention_mask", "labels")}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.bf16):
            loss = model(**b).loss
        # the model's loss is a mean over this micro-batch's counted tokens: weigh it by their share
        share = int((mb["labels"][:, 1:] != IGNORE).sum()) / max(counted, 1)
        (loss * share).backward()
        step_loss += loss.item() * share
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return step_loss
