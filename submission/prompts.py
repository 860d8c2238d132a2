"""Prompt templates as named presets, rendered with the model tokenizer's own chat template.

The assistant turn is opened with the template's answer intro and the encoder's answer start
(arc24: ``### Output\\n\\n```grid``) and its end-of-turn is cut, so the model continues the grid.
Prompts that would leave no room for the answer lose train examples, last first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tasks import MAX_SIDE, Task

_PRIORS_LONG = """The puzzle-like inputs and outputs present a grid where each square can be one of ten colors. A grid can be any height or width between 1x1 and 30x30.
The background of the grid is typically colored with 0.
The tasks from ARC are based on the following priors:

- Objectness: Objects persist and cannot appear or disappear without reason. Objects can interact or not depending on the circumstances.
- Goal-directed: Objects can be animate or inanimate. Some objects are "agents" - they have intentions and they pursue goals.
- Numbers & counting: Objects can be counted or sorted by their shape, appearance, or movement using basic mathematics like addition, subtraction, and comparison.
- Basic geometry & topology: Objects can be shapes like rectangles, triangles, and circles which can be mirrored, rotated, translated, deformed, combined, repeated, etc. Differences in distances can be detected.

The transformations between input and output should be based on these priors.
"""


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    system: str
    intro: str  # opens the user turn; examples and the test input follow
    answer_intro: str  # opens the assistant turn, before the encoder's answer start

    def user_message(self, examples: list[tuple[str, str]], test_input: str) -> str:
        parts = [self.intro, "\n"]
        for i, (inp, out) in enumerate(examples, 1):
            parts.append(f"\n## Example {i}\n\n### Input\n\n{inp}\n\n### Output\n\n{out}\n")
        parts.append(f"\n## Test case\n\n### Input\n\n{test_input}")
        return "".join(parts)


TEMPLATES = {
    t.name: t
    for t in (
        PromptTemplate(
            name="output-from-examples-v1",
            system="You are a helpful assistant.",
            intro=(
                "Let's see if you can solve this simple Abstraction and Reasoning Challenge (ARC) task.\n"
                "Below there are some input-output grid examples that define the task.\n"
                "Your job is to understand the transformation between the input and the output and apply it to the test input grid.\n"
                "The transformations are always based on the following priors: objectness, goal-directed, "
                "numbers & counting, and basic geometry & topology."
            ),
            answer_intro="### Output\n\n",
        ),
        PromptTemplate(
            name="output-from-examples-v0",
            system=(
                "You are a helpful AI assistant. Your job is to solve tasks from the Abstraction and Reasoning Challenge (ARC). \n"
                "The user will present you with sample input and output grids for each task. \n"
                "Your job will be to understand the transformation between the input and the output and apply it to the last input grid given by the user. \n"
                + _PRIORS_LONG
            ),
            intro=(
                "Let's see if you can solve this simple ARC task. "
                "These are some input-output grid examples that define the task."
            ),
            answer_intro="### Output\n\n",
        ),
        # Short text around the grids: every prompt token costs training time, and a small model
        # trained from scratch (the demo model) needs no priors spelled out.
        PromptTemplate(
            name="output-from-examples-compact",
            system="Solve the ARC task.",
            intro="Each example maps an input grid to an output grid. Apply the same rule to the test input.",
            answer_intro="### Output\n\n",
        ),
    )
}
DEFAULT_TEMPLATE = "output-from-examples-v1"  # arc24's models after v0


def get_template(name: str) -> PromptTemplate:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown prompt template {name!r}; choose from {', '.join(TEMPLATES)}") from None


@dataclass(frozen=True)
class Prompt:
    text: str
    token_ids: tuple[int, ...]
    examples_used: int
    examples_dropped: int


class Unanswerable(ValueError):
    """Not even one train example leaves room for the answer within the context length."""


def render(tokenizer, template: PromptTemplate, encoder, task: Task, test_index: int, n_examples: int) -> str:
    """The prompt text for one test input of an (already augmented) task, with its first n examples."""
    examples = [(encoder.encode(ex.input), encoder.encode(ex.output)) for ex in task.train[:n_examples]]
    opening = template.answer_intro + encoder.answer_start
    messages = [
        {"role": "system", "content": template.system},
        {"role": "user", "content": template.user_message(examples, encoder.encode(task.test_inputs[test_index]))},
        {"role": "assistant", "content": opening},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    # Cut the end-of-turn after the opened answer, whatever the chat template's markup is. The
    # opening is looked for after the user message only: each example's output opens the same way.
    user_end = text.find(messages[1]["content"])
    cut = -1 if user_end < 0 else text.find(opening, user_end + len(messages[1]["content"]))
    if cut < 0:
        raise ValueError("the chat template does not keep the user and assistant messages verbatim")
    return text[: cut + len(opening)]


def build_prompt(
    tokenizer,
    template: PromptTemplate,
    encoder,
    task: Task,
    test_index: int,
    max_model_len: int,
    answer_tokens: int,
) -> Prompt:
    """Render and tokenize, dropping train examples (last first) until the answer fits."""
    budget = max_model_len - answer_tokens
    n = len(task.train)
    while n >= 1:
        text = render(tokenizer, template, encoder, task, test_index, n)
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= budget:
            return Prompt(text, tuple(ids), n, len(task.train) - n)
        n -= 1
    raise Unanswerable(
        f"even one train example needs more than {budget} prompt tokens "
        f"({max_model_len} context - {answer_tokens} for the answer)"
    )


MAX_GRID_SIDE = 30  # ARC's largest grid
# Output sides that keep growing past every train pair's: feca6190's are 5, 10, 15 and its test
# answer 20. A third more than the scaled test input holds every test output of ARC-AGI-1's
# training and evaluation sets (bench/answer_budget.py, which also counts the prompts that drop
# train examples at a context: 3 and 10 of them at 8192 in the demo model's format).
ANSWER_SIDE_HEADROOM = (4, 3)


def answer_side_bound(task: Task) -> int:
    """The side of the square an answer to the task fits in (square: a dihedral view may transpose it).

    At least the largest grid of the task; where outputs scale their inputs, the largest test input
    scaled as much as any train pair scales (60c09cac: 3->6 and 4->8, so its 5x5 test input needs
    10, which no grid of the task reaches); then a third more for sizes that keep growing; at
    most 30. Integer arithmetic: a float ratio could round 10 up to 11.
    """
    largest = max(max(g.shape) for ex in task.train for g in (ex.input, ex.output))
    test_side = max(max(g.shape) for g in task.test_inputs)
    scaled = max(-(-test_side * max(ex.output.shape) // max(ex.input.shape)) for ex in task.train)
    side = max(largest, test_side, scaled)
    grow, by = ANSWER_SIDE_HEADROOM
    return min(MAX_GRID_SIDE, -(-side * grow // by))


def answer_token_budget(tokenizer, encoder, task: Task, margin: int = 8) -> int:
    """max_tokens for a task: the tokens of its largest possible answer (a square of
    ``answer_side_bound``) plus end-of-answer markup."""
    side = answer_side_bound(task)
    largest = encoder.encode(np.zeros((side, side), dtype=np.uint8))
    return len(tokenizer.encode(largest, add_special_tokens=False)) + margin


def answer_samples(encoder) -> list[str]:
    """The text of an answer of every shape from 1x1 to 30x30, as the model writes it after the
    prompt's opening (``encoder.answer_start``): each shape once with every colour it has room for,
    ten colourings where it has fewer than ten cells."""
    texts = []
    for rows in range(1, MAX_SIDE + 1):
        for cols in range(1, MAX_SIDE + 1):
            base = (np.arange(rows)[:, None] * 3 + np.arange(cols)[None, :]) % 10
            for shift in range(10) if rows * cols < 10 else (0, 1):
                texts.append(encoder.encode((base + shift) % 10)[len(encoder.answer_start):])
    return texts


def answer_vocabulary(tokenizer, encoder, end_token_ids) -> tuple[int, ...]:
    """The tokens that answers in ``encoder``'s format are written with (NVARC restricts decoding
    to these): the ids of every answer of answer_samples as the tokenizer writes them, and the
    tokens that end a completion. On Qwen2.5's tokenizer that is 16 tokens and the ends; a rule on
    characters would also admit every token spelled with them ("aside", "prd": the shape header
    holds letters), which a weak model then writes."""
    texts = answer_samples(encoder)
    backend = getattr(tokenizer, "tokenizer", tokenizer)  # prompt_tokens.PromptTokenizer wraps the HF one
    if callable(backend):  # a Hugging Face tokenizer encodes a batch at once (in Rust)
        encoded = backend(texts, add_special_tokens=False)["input_ids"]
    else:
        encoded = [tokenizer.encode(text, add_special_tokens=False) for text in texts]
    allowed = set(end_token_ids)
    for ids in encoded:
        allowed.update(ids)
    return tuple(sorted(allowed))


def tokenizer_problems(tokenizer, encoder, model_vocab_size: int | None) -> list[str]:
    """Why this tokenizer cannot serve the model in ``encoder``'s format, one line each (empty: it can):
    a character of the format's answers that does not come back from encode and decode (a missing
    digit or newline token: every answer would be mangled), or more tokens than the model's
    embedding has rows (a tokenizer of another model: ids past the embedding)."""
    problems = []
    answer = answer_samples(encoder)[-1]  # 30x30, every colour, the shape header and fence
    missing = sorted({ch for ch in set(answer)
                      if tokenizer.decode(tokenizer.encode(ch, add_special_tokens=False)) != ch})
    if missing:
        problems.append(f"the tokenizer cannot write the {encoder_name(encoder)} format's answers: "
                        f"{', '.join(map(repr, missing))} do(es) not come back from encode and decode")
    if model_vocab_size and len(tokenizer) > model_vocab_size:
        problems.append(f"the tokenizer has {len(tokenizer):,} tokens, the model's embedding {model_vocab_size:,} rows: "
                        "a tokenizer of another model? (ids past the embedding)")
    return problems


def encoder_name(encoder) -> str:
    from .encoders import ENCODERS

    return next((name for name, e in ENCODERS.items() if e == encoder), type(encoder).__name__)


def unfittable_test_inputs(tokenizer, template: PromptTemplate, encoder, tasks: dict, max_model_len: int) -> list[str]:
    """One line per test input whose shortest prompt (one train example) leaves no room for its answer
    at ``max_model_len``: it will be recorded unanswerable. Said before the engine starts."""
    lines = []
    for task_id, task in tasks.items():
        answer = answer_token_budget(tokenizer, encoder, task)
        for i in range(len(task.test_inputs)):
            if not task.train:
                continue
            shortest = len(tokenizer.encode(render(tokenizer, template, encoder, task, i, 1), add_special_tokens=False))
            if shortest + answer > max_model_len:
                lines.append(f"task {task_id} test {i}: its shortest prompt (one example) is {shortest} tokens and its "
                             f"answer needs {answer}, more than the context {max_model_len}: it will be unanswerable; "
                             "raise --max-model-len")
    return lines


FORMAT_FILE = "arc_format.json"  # in a model folder: the prompt format the model was trained with


def read_model_format(model_dir) -> tuple[dict[str, str], str | None]:
    """The encoder and template recorded in a model folder's arc_format.json, and the problem with
    the file if it is there but unusable (None when it is fine or simply absent).

    Only known names are returned: a model asked in the wrong format writes grids nobody parses."""
    import json
    from pathlib import Path

    from .encoders import ENCODERS

    path = Path(model_dir) / FORMAT_FILE
    if not path.is_file():
        return {}, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {}, f"{path}: not readable JSON ({exc})"
    if not isinstance(data, dict):
        return {}, f"{path}: expected an object with encoder and template, got {type(data).__name__}"
    known = {"encoder": ENCODERS, "template": TEMPLATES}
    found, problems = {}, []
    for key, names in known.items():
        value = data.get(key)
        if value is None:
            continue
        if value in names:
            found[key] = value
        else:
            problems.append(f"{key} {value!r} is not one of {', '.join(sorted(names))}")
    return found, f"{path}: " + "; ".join(problems) if problems else None


def load_tokenizer(model_dir: str, log=print):
    """The model's tokenizer, with the fast exact prompt encoding of prompt_tokens."""
    from transformers import AutoTokenizer  # heavy import, only where a tokenizer is needed

    from .prompt_tokens import PromptTokenizer

    return PromptTokenizer(AutoTokenizer.from_pretrained(model_dir), log=log)
