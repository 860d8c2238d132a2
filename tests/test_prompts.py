from pathlib import Path

import numpy as np
import pytest

from submission.augment import Augmentation
from submission.encoders import Minimal, RowNumbers, ShapeCodeBlock, get_encoder
from submission.prompts import (Unanswerable, answer_samples, answer_side_bound, answer_token_budget, answer_vocabulary,
                                build_prompt, encoder_name, get_template, load_tokenizer, render, tokenizer_problems,
                                unfittable_test_inputs)
from submission.tasks import Example, Task, load_challenges, load_solutions

ROOT = Path(__file__).resolve().parent.parent

# The rendered reference of ../shared/docs/arc24-prompt-format.md, character for character.
REFERENCE = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nLet's see if you can solve "
    "this simple Abstraction and Reasoning Challenge (ARC) task.\nBelow there are some input-output grid examples "
    "that define the task.\nYour job is to understand the transformation between the input and the output and "
    "apply it to the test input grid.\nThe transformations are always based on the following priors: objectness, "
    "goal-directed, numbers & counting, and basic geometry & topology.\n\n## Example 1\n\n### Input\n\n```grid "
    "shape: 2x2\n1 12\n2 34\n```\n\n### Output\n\n```grid shape: 2x2\n1 43\n2 21\n```\n\n## Example 2\n\n### "
    "Input\n\n```grid shape: 1x1\n1 5\n```\n\n### Output\n\n```grid shape: 1x1\n1 5\n```\n\n## Test case\n\n### "
    "Input\n\n```grid shape: 1x2\n1 01\n```<|im_end|>\n<|im_start|>assistant\n### Output\n\n```grid"
)


def grid(rows):
    return np.array(rows, dtype=np.uint8)


REFERENCE_TASK = Task(
    "ref00000",
    (Example(grid([[1, 2], [3, 4]]), grid([[4, 3], [2, 1]])), Example(grid([[5]]), grid([[5]]))),
    (grid([[0, 1]]),),
)


def test_arc24_reference_prompt_is_exact(tokenizer):
    text = render(tokenizer, get_template("output-from-examples-v1"), get_encoder("shape-row-numbers"),
                  REFERENCE_TASK, 0, 2)
    assert text == REFERENCE


def test_v0_template_has_the_long_system_prompt(tokenizer):
    text = render(tokenizer, get_template("output-from-examples-v0"), get_encoder("shape-row-numbers"),
                  REFERENCE_TASK, 0, 2)
    assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant. Your job is to solve tasks")
    assert "- Objectness: Objects persist" in text
    assert "<|im_start|>user\nLet's see if you can solve this simple ARC task. These are some input-output grid " \
           "examples that define the task.\n\n## Example 1\n" in text
    assert text.endswith("<|im_start|>assistant\n### Output\n\n```grid")


def test_prompt_fits_by_dropping_examples_last_first(tokenizer):
    encoder, template = get_encoder("shape-row-numbers"), get_template("output-from-examples-v1")
    full = build_prompt(tokenizer, template, encoder, REFERENCE_TASK, 0, 10_000, 10)
    assert (full.examples_used, full.examples_dropped) == (2, 0)
    # the ids are the text's, as the model's own tokenizer (not the pipeline's fast path) encodes it
    assert list(full.token_ids) == tokenizer.tokenizer.encode(full.text, add_special_tokens=False)
    one = render(tokenizer, template, encoder, REFERENCE_TASK, 0, 1)
    limit = len(tokenizer.encode(one, add_special_tokens=False)) + 10
    fitted = build_prompt(tokenizer, template, encoder, REFERENCE_TASK, 0, limit, 10)
    assert (fitted.examples_used, fitted.examples_dropped) == (1, 1)
    assert "## Example 1" in fitted.text and "## Example 2" not in fitted.text
    assert "1 43" in fitted.text  # the first example is the one kept
    with pytest.raises(Unanswerable, match="even one train example"):
        build_prompt(tokenizer, template, encoder, REFERENCE_TASK, 0, limit - 1, 10)


def test_answer_budget_covers_the_largest_grid_of_the_task(tokenizer):
    encoder = get_encoder("shape-row-numbers")
    square = lambda side: len(tokenizer.encode(encoder.encode(np.zeros((side, side), np.uint8)),  # noqa: E731
                                               add_special_tokens=False))
    # the largest grid is 2x2, a third more is 3x3
    assert answer_token_budget(tokenizer, encoder, REFERENCE_TASK, margin=0) == square(3)
    wide = Task("w", (Example(grid([[1] * 7] * 3), grid([[1]])),), (grid([[1]]),))
    assert answer_token_budget(tokenizer, encoder, wide, margin=0) == square(10)  # 7 and a third, rounded up


def shapes_task(pairs, tests):
    """A task of blank grids with the given (input, output) shapes of real ARC tasks."""
    blank = lambda shape: np.zeros(shape, np.uint8)  # noqa: E731
    return Task("shapes", tuple(Example(blank(i), blank(o)) for i, o in pairs), tuple(blank(t) for t in tests))


@pytest.mark.parametrize("pairs, tests, side", [
    ([((3, 3), (6, 6)), ((4, 4), (8, 8))], [(5, 5)], 14),  # 60c09cac: the 5x5 test input scales to 10, +1/3
    ([((1, 5), (10, 10)), ((1, 5), (5, 5)), ((1, 5), (15, 15))], [(1, 5)], 20),  # feca6190: its answer is 20
    ([((3, 3), (9, 9)), ((4, 4), (16, 16))], [(5, 5)], 27),  # ad7e01d0: the larger ratio, 4, scales 5 to 20
    ([((5, 6), (5, 12)), ((5, 7), (5, 14))], [(5, 9)], 24),  # 963e52fc: 9 wide doubles to 18
    ([((9, 9), (3, 3))], [(9, 9)], 12),  # outputs smaller than inputs: the largest grid, 9
    ([((3, 3), (3, 3))], [(3, 3), (1, 7)], 10),  # the largest test input counts
    ([((5, 5), (1, 1))], [(9, 9)], 12),  # even where the pairs shrink: 9, not 5 scaled down
    ([((10, 10), (20, 20))], [(20, 20)], 30),  # never past ARC's 30
])
def test_answer_side_bound_scales_the_test_input_like_the_train_pairs(pairs, tests, side):
    assert answer_side_bound(shapes_task(pairs, tests)) == side


def test_every_answer_of_the_real_in_family_tasks_fits_its_budget():
    # 60c09cac, c59eb873 and 833dafe3 scale their test inputs past every grid of the task: with a
    # bound of the largest grid their answers were cut at max_tokens and could never be right
    challenges = load_challenges(ROOT / "data" / "arc-agi-1-in-family" / "challenges.json")
    solutions, _ = load_solutions(ROOT / "data" / "arc-agi-1-in-family" / "solutions.json")
    assert not challenges.problems and len(challenges.tasks) == 37
    too_large = [task_id for task_id, task in challenges.tasks.items()
                 if max(max(answer.shape) for answer in solutions[task_id]) > answer_side_bound(task)]
    assert too_large == []


def test_augmented_prompt_shows_the_augmented_grids(tokenizer):
    aug = Augmentation(1, (0, 9, 8, 7, 6, 5, 4, 3, 2, 1), (1, 0))
    text = render(tokenizer, get_template("output-from-examples-v1"), get_encoder("minimal"),
                  aug.apply_task(REFERENCE_TASK), 0, 2)
    assert "## Example 1\n\n### Input\n\n5\n\n### Output\n\n5\n" in text  # order swapped
    assert "### Input\n\n98\n\n### Output\n\n" not in text
    assert "## Test case\n\n### Input\n\n9\n0<|im_end|>" in text  # [[0,1]] recoloured then turned


def test_unknown_template_name_lists_the_choices():
    with pytest.raises(ValueError) as error:
        get_template("v2")
    assert str(error.value) == ("unknown prompt template 'v2'; choose from output-from-examples-v1, "
                                "output-from-examples-v0, output-from-examples-compact")


class NoAssistantTurns:
    """A chat template that writes only the system and user turns, so the answer cannot be opened."""

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):  # HF's defaults
        return "".join(f"<{m['role']}>\n{m['content']}\n" for m in messages if m["role"] != "assistant")


class RewritesTheUser(NoAssistantTurns):
    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        return "".join(f"<{m['role']}>\n{m['content'].upper() if m['role'] == 'user' else m['content']}\n"
                       for m in messages)


class ContentsOnly:
    """A chat template with no markup and no system turn (some models have none): the user
    message opens the text."""

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=False):
        return "".join(m["content"] for m in messages if m["role"] != "system") + "<end>"


def test_a_chat_template_without_markup_or_system_turn_still_gives_the_opened_answer():
    template, encoder = get_template("output-from-examples-v1"), get_encoder("shape-row-numbers")
    text = render(ContentsOnly(), template, encoder, REFERENCE_TASK, 0, 2)
    examples = [(encoder.encode(ex.input), encoder.encode(ex.output)) for ex in REFERENCE_TASK.train[:2]]
    assert text == (template.user_message(examples, encoder.encode(REFERENCE_TASK.test_inputs[0]))
                    + template.answer_intro + encoder.answer_start)


@pytest.mark.parametrize("n_examples", [0, 2])
@pytest.mark.parametrize("chat", [NoAssistantTurns, RewritesTheUser])
def test_a_chat_template_that_drops_or_rewrites_a_message_is_an_error(chat, n_examples):
    # with examples, each example's "### Output\n\n```grid" must not pass for the opened answer
    with pytest.raises(ValueError) as error:
        render(chat(), get_template("output-from-examples-v1"), get_encoder("shape-row-numbers"),
               REFERENCE_TASK, 0, n_examples)
    assert str(error.value) == "the chat template does not keep the user and assistant messages verbatim"


class AddsBos:
    """A Llama-style tokenizer: encode() adds a BOS id unless told not to (its chat template writes
    the markup itself); the rest is the tiny model's tokenizer."""

    BOS = 999_999

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def apply_chat_template(self, *args, **kwargs):
        return self.tokenizer.apply_chat_template(*args, **kwargs)

    def encode(self, text, add_special_tokens=True):
        return ([self.BOS] if add_special_tokens else []) + self.tokenizer.encode(text, add_special_tokens=False)


def test_prompt_ids_get_no_special_tokens_beyond_the_chat_templates(tokenizer):
    prompt = build_prompt(AddsBos(tokenizer), get_template("output-from-examples-v1"), get_encoder("shape-row-numbers"),
                          REFERENCE_TASK, 0, 10_000, 10)
    assert prompt.token_ids == tuple(tokenizer.encode(prompt.text, add_special_tokens=False))
    assert AddsBos.BOS not in prompt.token_ids


def test_answer_budget_adds_the_margin_for_the_end_of_the_answer(tokenizer):
    encoder = get_encoder("shape-row-numbers")
    bare = answer_token_budget(tokenizer, encoder, REFERENCE_TASK, margin=0)
    assert answer_token_budget(tokenizer, encoder, REFERENCE_TASK, margin=5) == bare + 5
    assert answer_token_budget(tokenizer, encoder, REFERENCE_TASK) > bare  # the default leaves room for end of turn


def test_load_tokenizer_reports_to_the_given_log(tokenizer, tmp_path):
    # a tokenizer whose tokens span the fast path's cut points ("\n" + "`"): the first checked
    # encode falls back to the tokenizer's own encoding and says so, in the run's log
    from devkit.trained_bpe import build_bpe_tokenizer

    build_bpe_tokenizer([REFERENCE] * 4, tokenizer.chat_template, None, vocab_size=400).save_pretrained(tmp_path)
    lines = []
    loaded = load_tokenizer(str(tmp_path), log=lines.append)
    loaded.encode(REFERENCE, add_special_tokens=False)
    assert len(lines) == 1 and lines[0].startswith("prompt tokens: encode 1 differs from the tokenizer's own encoding")


def test_the_answer_vocabulary_is_what_answers_are_written_with_and_the_end_tokens(tokenizer):
    ends = {tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")}
    for name, characters in [("minimal", "\n0123456789"),
                             ("shape-row-numbers", "\n 0123456789:`aehpsx")]:  # " shape: 3x3\n1 ...\n```"
        allowed = answer_vocabulary(tokenizer, get_encoder(name), ends)
        written = [tokenizer.decode([i]) for i in allowed if i not in ends]
        assert "".join(written) == characters and ends <= set(allowed)
        assert len(allowed) == len(characters) + 2  # one token per character in this byte-level vocabulary


QWEN_ANSWER_TOKENS = {  # what answers after "```grid" are written with in Qwen2.5's tokenizer
    "shape-row-numbers": [*"0123456789", ":", "x", "\n", " ", " shape", "```"],
    "code-block-row-numbers": [*"0123456789", "\n", " ", "```"],
    "code-block-minimal": [*"0123456789", "\n", "```"],
    "row-numbers": [*"0123456789", "\n", " "],
    "minimal": [*"0123456789", "\n"],
}


@pytest.mark.parametrize("name", sorted(QWEN_ANSWER_TOKENS))
def test_on_qwen2_5_s_tokenizer_the_answer_vocabulary_is_exactly_the_answers_tokens(qwen_tokenizer, name):
    ends = {151643, 151645}  # <|endoftext|>, <|im_end|>
    allowed = answer_vocabulary(qwen_tokenizer, get_encoder(name), ends)
    assert sorted(qwen_tokenizer.decode([i]) for i in set(allowed) - ends) == sorted(QWEN_ANSWER_TOKENS[name])
    assert ends <= set(allowed)
    # a rule on characters admitted 2,158 tokens here, "aside" and "prd" among them
    assert qwen_tokenizer.encode("aside", add_special_tokens=False)[0] not in allowed


def test_a_scale_that_is_not_whole_rounds_the_answer_side_up():
    # 2x2 -> 3x3 scales the 3x3 test input to 4.5, so 5; a third more is 6.67, so 7 (a float 4.5 gave 6)
    side = answer_side_bound(shapes_task([((2, 2), (3, 3))], [(3, 3)]))
    assert side == 7 and isinstance(side, int)


def test_answer_samples_write_every_shape_once_with_each_colour_it_has_room_for():
    texts = answer_samples(get_encoder("minimal"))
    # 1x1 to 30x30: the 23 shapes of fewer than 10 cells in ten colourings, the other 877 in two
    assert len(texts) == 23 * 10 + 877 * 2
    assert texts[:10] == list("0123456789")  # 1x1, each colour
    assert texts[10:20] == ["01", "12", "23", "34", "45", "56", "67", "78", "89", "90"]  # 1x2, shifted
    assert texts[20] == "012"
    row = lambda r, shift: "".join(str((3 * r + c + shift) % 10) for c in range(30))  # noqa: E731
    assert texts[-2:] == ["\n".join(row(r, 0) for r in range(30)), "\n".join(row(r, 1) for r in range(30))]
    # after the prompt's opening "```grid": the model writes the shape header itself
    assert answer_samples(get_encoder("shape-row-numbers"))[0] == " shape: 1x1\n1 0\n```"


class BatchAddsBos:
    """A Hugging Face-style tokenizer that adds a BOS id unless told not to, in a batch call and in
    encode(); it counts both."""

    BOS = 999_999

    def __init__(self, tokenizer):
        self.hf = tokenizer.tokenizer  # the fixture's Hugging Face tokenizer
        self.batches = self.encodes = 0

    def __call__(self, texts, add_special_tokens=True):
        self.batches += 1
        ids = self.hf(texts, add_special_tokens=False)["input_ids"]
        return {"input_ids": [[self.BOS] * bool(add_special_tokens) + i for i in ids]}

    def encode(self, text, add_special_tokens=True):
        self.encodes += 1
        return [self.BOS] * bool(add_special_tokens) + self.hf.encode(text, add_special_tokens=False)


class Wraps:
    """prompt_tokens.PromptTokenizer's shape: the batch tokenizer as .tokenizer, an encode of its own."""

    def __init__(self, backend):
        self.tokenizer = backend
        self.encodes = 0

    def encode(self, text, add_special_tokens=True):
        self.encodes += 1
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)


class EncodeOnly:
    """A tokenizer with encode() alone: no batch call to use."""

    def __init__(self, backend):
        self.backend = backend

    def encode(self, text, add_special_tokens=True):
        return self.backend.encode(text, add_special_tokens=add_special_tokens)


def test_the_answer_vocabulary_takes_one_batch_call_where_there_is_one_and_no_special_tokens(tokenizer):
    encoder = get_encoder("shape-row-numbers")
    expected = tuple(sorted({0, *(tokenizer.encode(c, add_special_tokens=False)[0] for c in "\n 0123456789:`aehpsx")}))
    batch = BatchAddsBos(tokenizer)
    assert answer_vocabulary(batch, encoder, {0}) == expected and (batch.batches, batch.encodes) == (1, 0)
    wrapped = Wraps(BatchAddsBos(tokenizer))
    assert answer_vocabulary(wrapped, encoder, {0}) == expected
    assert (wrapped.tokenizer.batches, wrapped.tokenizer.encodes, wrapped.encodes) == (1, 0, 0)
    single = EncodeOnly(BatchAddsBos(tokenizer))  # one encode per answer
    assert answer_vocabulary(single, encoder, {0}) == expected
    assert (single.backend.batches, single.backend.encodes) == (0, len(answer_samples(encoder)))


class Loses:
    """A tokenizer that loses some characters (as one without their tokens would) and adds a BOS id
    unless told not to, which decode writes as "<s>"."""

    BOS = 999_999

    def __init__(self, tokenizer, lost=""):
        self.tokenizer, self.lost = tokenizer, lost

    def __len__(self):
        return len(self.tokenizer)

    def encode(self, text, add_special_tokens=True):
        kept = "".join(ch for ch in text if ch not in self.lost)
        return [self.BOS] * bool(add_special_tokens) + self.tokenizer.encode(kept, add_special_tokens=False)

    def decode(self, ids):
        bos = "<s>" if ids[:1] == [self.BOS] else ""
        return bos + self.tokenizer.decode(ids[len(bos) and 1:])


def test_tokenizer_problems_name_every_lost_character_and_an_embedding_as_large_as_the_vocabulary_serves(tokenizer):
    encoder = get_encoder("shape-row-numbers")
    assert tokenizer_problems(Loses(tokenizer), encoder, None) == []  # no BOS asked for: every character comes back
    # 7 is in the largest answer (every colour), not in the small ones
    assert tokenizer_problems(Loses(tokenizer, "7\n"), encoder, None) == [
        ("the tokenizer cannot write the shape-row-numbers format's answers: '\\n', '7' do(es) not come back from "
         "encode and decode")]
    assert tokenizer_problems(tokenizer, encoder, len(tokenizer)) == []
    assert tokenizer_problems(tokenizer, encoder, len(tokenizer) - 1) == [
        (f"the tokenizer has {len(tokenizer):,} tokens, the model's embedding {len(tokenizer) - 1:,} rows: "
         "a tokenizer of another model? (ids past the embedding)")]


def test_an_encoder_is_named_as_registered_else_by_its_class():
    assert encoder_name(ShapeCodeBlock(RowNumbers(Minimal()))) == "shape-row-numbers"  # equal to the registered one
    assert encoder_name(ShapeCodeBlock(Minimal())) == "ShapeCodeBlock"


def test_a_shortest_prompt_and_answer_that_fill_the_context_exactly_fit(tokenizer):
    encoder, template = get_encoder("shape-row-numbers"), get_template("output-from-examples-v1")
    shortest = len(tokenizer.encode(render(tokenizer, template, encoder, REFERENCE_TASK, 0, 1), add_special_tokens=False))
    answer = answer_token_budget(tokenizer, encoder, REFERENCE_TASK)
    tasks = {"ref00000": REFERENCE_TASK}
    assert unfittable_test_inputs(tokenizer, template, encoder, tasks, shortest + answer) == []
    assert unfittable_test_inputs(tokenizer, template, encoder, tasks, shortest + answer - 1) == [
        (f"task ref00000 test 0: its shortest prompt (one example) is {shortest} tokens and its answer needs "
         f"{answer}, more than the context {shortest + answer - 1}: it will be unanswerable; raise --max-model-len")]
