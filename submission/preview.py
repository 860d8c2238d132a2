"""``python -m submission prompt``: one prompt exactly as ``run`` sends it, without starting an engine.

Why it exists: a fine-tuned model answers only in the text format it was trained on; asked in another,
it writes grids nobody parses and the run scores 0 with no other sign. This prints the text whose token
ids the engine gets for one test input under one view of the run's augmentation plan (chat template
applied, the same answer-token budget and the same train examples dropped as ``pipeline.prepare_requests``,
which builds it here too), its token count against the context, where the encoder and template came from,
and, with solutions, the answer text the model must write after it. Compare both with a training example
rendered by your own training code: they must match character for character.

Nothing here imports vllm: only the tokenizer is loaded (a few seconds).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .augment import Augmentation
from .encoders import ENCODERS, get_encoder
from .engine import model_context_limit  # engine.py imports vllm only when used
from .judge import candidate_text
from .pipeline import plan_views, prepare_requests
from .prompts import FORMAT_FILE, TEMPLATES, Unanswerable, build_prompt, get_template, read_model_format
from .rounds import WorkItem
from .settings import RunSettings
from .tasks import Task

RULE = "-----"  # the marker lines around the verbatim blocks


@dataclass(frozen=True)
class PromptPreview:
    task_id: str
    test_index: int
    view: int  # position in the test input's plan
    augmentation: Augmentation
    token_ids: tuple[int, ...]  # what the engine gets
    text: str  # the token ids decoded: what the model reads
    renders_as_text: bool  # the ids decode back to the rendered prompt text (False: a tokenizer that loses text)
    answer_tokens: int  # the request's max_tokens
    context: int
    examples_used: int
    examples_dropped: int
    expected_answer: str | None = None  # with a solution: the text the model must write after the prompt
    expected_answer_tokens: int | None = None


def preview_prompt(tokenizer, task: Task, test_index: int, view: int, settings: RunSettings, context: int,
                   solution: np.ndarray | None = None) -> PromptPreview:
    """The prompt of view ``view`` of test input ``test_index``, as a run with ``settings`` at context
    ``context`` sends it; with ``solution`` (the true output, un-augmented), the answer expected in that
    view. ValueError for an index out of range, prompts.Unanswerable when no prompt fits the context."""
    check_indices(task, test_index, view)
    # Plans are prefixes of longer plans (same seed, same first views): view K of a run with more views.
    plan_settings = settings.replace(augmentations=max(settings.views.augmentations, view + 1))
    augmentation = plan_views({task.id: task}, plan_settings)[(task.id, test_index)][view]
    refused = []
    ready, _ = prepare_requests({task.id: task}, [WorkItem(task.id, test_index, augmentation, view)], tokenizer,
                                context, settings, log=refused.append)
    if not ready:
        raise Unanswerable(refused[0] if refused else "no prompt fits the context")
    request = ready[0][1]
    encoder, template = get_encoder(settings.format.encoder), get_template(settings.format.template)
    # The same prompt again, for its count of train examples (prepare_requests only logs it)
    prompt = build_prompt(tokenizer, template, encoder, augmentation.apply_task(task), test_index, context,
                          request.max_tokens)
    if prompt.token_ids != request.prompt_token_ids:
        raise RuntimeError("build_prompt and prepare_requests disagree on the prompt's tokens: a bug")
    text = tokenizer.decode(list(request.prompt_token_ids), skip_special_tokens=False)
    expected = expected_tokens = None
    if solution is not None:
        expected = candidate_text(encoder, augmentation.apply_grid(np.asarray(solution, dtype=np.uint8)))
        expected_tokens = len(tokenizer.encode(expected, add_special_tokens=False))
    return PromptPreview(task.id, test_index, view, augmentation, request.prompt_token_ids, text, text == prompt.text,
                         request.max_tokens, context, prompt.examples_used, prompt.examples_dropped,
                         expected, expected_tokens)


def check_indices(task: Task, test_index: int, view: int) -> None:
    """ValueError naming the index out of range, if one is."""
    if not 0 <= test_index < len(task.test_inputs):
        raise ValueError(f"--test {test_index} is out of range: task {task.id} has {len(task.test_inputs)} "
                         f"test input(s), 0-{len(task.test_inputs) - 1}")
    if view < 0:
        raise ValueError(f"--view {view} is out of range: views are numbered from 0")


def format_preview(preview: PromptPreview, settings: RunSettings, format_source: str, context_source: str,
                   end_of_turn: str | None = None) -> str:
    """The command's output: a header, the prompt verbatim, the token counts, and the expected answer."""
    p = preview
    lines = [f"task {p.task_id}, test {p.test_index}, view {p.view}: {p.augmentation} ({p.augmentation.description})"
             + ("" if p.view < settings.views.augmentations else
                f"; a run sends it only with --augmentations {p.view + 1} or more (this plan's default: "
                f"{settings.views.augmentations})"),
             f"format: {format_source}",
             f"{RULE} prompt: the exact text the model reads, chat template applied (printed verbatim, then one "
             f"newline) {RULE}",
             p.text,
             f"{RULE} end of prompt {RULE}"]
    if not p.renders_as_text:
        lines.append("warning: the tokenizer does not decode the prompt's ids back to the rendered text; shown "
                     "above is the decoded text, what the model reads")
    total = len(p.token_ids) + p.answer_tokens
    lines.append(f"tokens: {len(p.token_ids)} prompt + {p.answer_tokens} answer budget = {total} of the context "
                 f"{p.context} ({context_source}); "
                 f"train examples: {p.examples_used} of {p.examples_used + p.examples_dropped}"
                 + (f", {p.examples_dropped} dropped (last first) to fit the context" if p.examples_dropped else ""))
    if p.expected_answer is not None:
        lines += [f"{RULE} expected answer: the exact text the model must write after the prompt, the true output "
                  f"in this view (printed verbatim, then one newline) {RULE}",
                  p.expected_answer,
                  f"{RULE} end of expected answer {RULE}"]
        fits = p.expected_answer_tokens <= p.answer_tokens
        lines.append(f"expected answer: {p.expected_answer_tokens} tokens, "
                     + ("within" if fits else "MORE than") + f" the answer budget of {p.answer_tokens}"
                     + ("" if fits else ": the run would cut it off (raise or drop --max-tokens)")
                     + (f"; a model then ends its turn ({end_of_turn}), but generation already stops at the "
                        "closing fence" if end_of_turn and p.expected_answer.endswith("```") else ""))
    return "\n".join(lines)


PROMPT_HELP = "print the exact prompt text one test input sends to the model, and its expected answer"
PROMPT_DESCRIPTION = (
    "Print the text whose token ids the engine gets for one test input of one task, under one view of the "
    "augmentation plan a run with the same settings sends (the model's chat template applied, the same "
    "answer-token budget and train examples dropped as a run at this context), its token count, and the "
    "encoder and template used and where they came from. With --solutions, also the expected answer: the "
    "true output in the same view, written exactly as the model must write it after the prompt. "
    "No engine starts (vllm is not imported); it takes seconds.")
PROMPT_EPILOG = (
    "Compare the prompt and the expected answer with one training example rendered by the code your model "
    "was trained with (its input text and its target text): the grid lines, the shape header and fences, "
    "the instructions and the chat markup must match character for character. A model asked in another "
    "format writes answers nobody parses and the run scores 0 with no other sign; fix a mismatch with the "
    f"model folder's {FORMAT_FILE} (or --encoder/--template), then run this again.")


def add_prompt_arguments(p: argparse.ArgumentParser) -> None:
    from .cli import _existing_file

    p.add_argument("--model", required=True, help="model folder (its tokenizer, chat template and "
                                                   f"{FORMAT_FILE}; no weights are loaded)")
    p.add_argument("--challenges", type=_existing_file, required=True, help="Kaggle-layout challenges JSON file")
    p.add_argument("--task", required=True, help="task id")
    p.add_argument("--test", type=int, default=0, help="test input index (default: %(default)s)")
    p.add_argument("--view", type=int, default=0,
                   help="view index in the test input's augmentation plan: 0-7 are the 8 dihedral transforms "
                        "(0 = identity), 8 on add colour permutations and shuffled examples (default: %(default)s)")
    p.add_argument("--solutions", type=_existing_file,
                   help="solutions JSON file: also print the expected answer in this view")
    fmt = p.add_argument_group("settings of the run to match (defaults: run's)")
    fmt.add_argument("--encoder", choices=sorted(ENCODERS),
                     help=f"grid text format (default: the model folder's {FORMAT_FILE}, else run's default)")
    fmt.add_argument("--template", choices=sorted(TEMPLATES),
                     help=f"prompt template (default: the model folder's {FORMAT_FILE}, else run's default)")
    fmt.add_argument("--max-model-len", type=int, default=RunSettings().format.max_model_len,
                     help="context length, capped at the model's own (default: %(default)s)")
    fmt.add_argument("--max-tokens", type=int, help="cap on the answer tokens, as run's --max-tokens")
    fmt.add_argument("--seed", type=int, default=RunSettings().views.seed,
                     help="seed of the augmentation plan (default: %(default)s)")
    fmt.add_argument("--permute-background", action="store_true",
                     help="colour permutations move colour 0 too, as run's option")
    fmt.add_argument("--no-shuffle-order", dest="shuffle_order", action="store_false",
                     help="train examples keep the task's order in views 8 on, as run's option")


def cmd_prompt(args) -> int:
    from .cli import _load_challenges_or_exit, _load_solutions_or_exit, resolve_prompt_format

    challenges = _load_challenges_or_exit(args.challenges)
    task = challenges.tasks.get(args.task)
    if task is None:
        sys.exit(f"error: {_unknown_task(args.task, challenges, args.challenges)}")
    try:
        check_indices(task, args.test, args.view)  # before the tokenizer's seconds of loading
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    solution = None
    if args.solutions:
        solutions = _load_solutions_or_exit(args.solutions)
        if task.id not in solutions:
            sys.exit(f"error: solutions file {args.solutions} has no usable solutions for task {task.id}")
        if args.test >= len(solutions[task.id]):
            sys.exit(f"error: solutions file {args.solutions} has {len(solutions[task.id])} solution(s) for task "
                     f"{task.id}, none for test {args.test}")
        solution = solutions[task.id][args.test]
    if not Path(args.model).is_dir():
        sys.exit(f"error: model folder {args.model}: not found")
    given = {"encoder": args.encoder, "template": args.template}
    with redirect_stdout(sys.stderr):  # its warnings go beside the output, not into it
        resolve_prompt_format(args)
    try:
        settings = RunSettings.of(seed=args.seed, encoder=args.encoder, template=args.template,
                                  permute_background=args.permute_background, shuffle_order=args.shuffle_order,
                                  max_tokens=args.max_tokens, max_model_len=args.max_model_len)
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    limit = model_context_limit(args.model)
    context = min(args.max_model_len, limit or args.max_model_len)
    context_source = f"--max-model-len {args.max_model_len}, " + (
        f"the model's limit {limit}" if limit else "the model's config.json names no limit")
    tokenizer = _load_tokenizer_or_exit(args.model)
    try:
        preview = preview_prompt(tokenizer, task, args.test, args.view, settings, context, solution)
    except Unanswerable as exc:
        sys.exit(f"error: view {args.view} of the plan: {exc}; raise --max-model-len")
    print(format_preview(preview, settings, _format_source(args.model, given, settings),
                         context_source, getattr(tokenizer, "eos_token", None)), flush=True)
    return 0


def _unknown_task(task_id: str, challenges, path) -> str:
    """The line for a task id that is not a usable task of the file, naming a few close ids."""
    bad = [p for p in challenges.problems if p.task_id == task_id]
    if bad:
        return f"task {task_id} of {path} is not usable: {bad[0]}"
    ids = list(challenges.tasks)
    close = difflib.get_close_matches(task_id, ids, n=5, cutoff=0.5) or \
        [i for i in ids if i.startswith(task_id[:2])][:5] or ids[:5]
    return f"no task {task_id!r} in {path} ({len(ids)} tasks); close ids: {', '.join(close)}"


def _load_tokenizer_or_exit(model: str):
    from .prompts import load_tokenizer

    try:
        return load_tokenizer(model, log=lambda message: print(message, file=sys.stderr))
    except Exception as exc:  # transformers raises OSError, ValueError and others for a folder without one
        first = (str(exc).splitlines() or [""])[0][:300]
        sys.exit(f"error: model folder {model}: no usable tokenizer ({type(exc).__name__}: {first})")


def _format_source(model: str, given: dict, settings: RunSettings) -> str:
    """Which encoder and template are used and where each came from, as resolve_prompt_format chose."""
    recorded, _ = read_model_format(model)
    parts = []
    for key, value in (("encoder", settings.format.encoder), ("template", settings.format.template)):
        if given[key] is not None:
            source = f"--{key}" + (f", contradicting {Path(model) / FORMAT_FILE}'s {recorded[key]}"
                                   if recorded.get(key, value) != value else "")
        elif key in recorded:
            source = str(Path(model) / FORMAT_FILE)
        else:
            source = f"run's default: {Path(model) / FORMAT_FILE} names none"
        parts.append(f"{key} {value} (from {source})")
    return ", ".join(parts)
