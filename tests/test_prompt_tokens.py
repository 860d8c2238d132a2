"""The fast prompt encoding gives exactly the tokenizer's ids, and gives itself up when it would not."""

from pathlib import Path

import pytest

from submission.encoders import ENCODERS
from submission.pipeline import plan_work
from submission.settings import RunSettings
from submission.prompt_tokens import PromptTokenizer
from submission.prompts import TEMPLATES, render

ROOT = Path(__file__).resolve().parent.parent

from devkit.trained_bpe import build_bpe_tokenizer


def sample_prompts(challenges, tokenizer, encoder="shape-row-numbers", template="output-from-examples-v1", views=8):
    settings = RunSettings.of(augmentations=views, encoder=encoder, template=template)
    return [
        render(tokenizer, TEMPLATES[template], ENCODERS[encoder], item.augmentation.apply_task(challenges.tasks[item.task_id]),
               item.test_index, len(challenges.tasks[item.task_id].train))
        for item in plan_work(challenges.tasks, settings)
    ]


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_same_ids_as_the_tokenizer_for_every_encoder_and_template(sample_challenges, tokenizer, encoder, template):
    fast = PromptTokenizer(tokenizer.tokenizer, check_first=0, check_every=10**9)
    prompts = sample_prompts(sample_challenges, tokenizer, encoder, template)
    assert len(prompts) == 80
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [tokenizer.tokenizer.encode(p, add_special_tokens=False)
                                                 for p in prompts]
    described = fast.describe()
    assert described.pop("pieces") > 0
    assert described == {"fast": True, "grid_rows_per_character": True, "encodes": 80, "checked": 0, "fallback": None}


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_same_ids_as_qwen2_5_s_real_tokenizer(sample_challenges, qwen_tokenizer, encoder, template):
    real = qwen_tokenizer.tokenizer
    assert len(real) == 151_665 and real.encode("Hello world", add_special_tokens=False) == [9707, 1879]
    prompts = sample_prompts(sample_challenges, qwen_tokenizer, encoder, template)
    fast = PromptTokenizer(real, check_first=0, check_every=10**9)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [real.encode(p, add_special_tokens=False)
                                                                            for p in prompts]
    assert fast.describe()["grid_rows_per_character"] is True and fast.fallback is None


def test_checks_the_first_prompts_and_one_in_every_check_every(sample_challenges, tokenizer):
    fast = PromptTokenizer(tokenizer.tokenizer, check_first=3, check_every=20)
    for p in sample_prompts(sample_challenges, tokenizer):
        fast.encode(p, add_special_tokens=False)
    assert (fast.encodes, fast.checked) == (80, 3 + 4)  # prompts 1-3, then 20, 40, 60, 80


def test_grid_tokens_with_ids_past_255_are_looked_up_exactly(sample_challenges, tokenizer):
    # Qwen2's grid tokens all have ids under 256 (one bytes.translate per block); another
    # tokenizer's need not, and then the lookup must not squeeze them into bytes.
    class OneTokenPerCharacter:
        def encode(self, text, add_special_tokens=True):
            return [1000 + ord(c) for c in text]

    prompts = sample_prompts(sample_challenges, tokenizer)
    fast = PromptTokenizer(OneTokenPerCharacter(), check_first=0, check_every=10**9)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [[1000 + ord(c) for c in p] for p in prompts]
    assert fast.describe()["grid_rows_per_character"] is True and fast.fallback is None


def test_a_tokenizer_that_merges_digits_gets_exact_ids_without_the_per_character_path(sample_challenges, tokenizer):
    prompts = sample_prompts(sample_challenges, tokenizer)
    gpt2_like = build_bpe_tokenizer(prompts, tokenizer.chat_template, "gpt2", vocab_size=2000)  # \p{N}+: digit runs merge
    assert len(gpt2_like.encode("0000000000", add_special_tokens=False)) < 10
    fast = PromptTokenizer(gpt2_like, check_first=0, check_every=10**9)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [gpt2_like.encode(p, add_special_tokens=False) for p in prompts]
    assert fast.describe()["grid_rows_per_character"] is False and fast.fallback is None


def test_a_tokenizer_whose_tokens_span_the_cut_points_falls_back_on_the_first_check(sample_challenges, tokenizer):
    prompts = sample_prompts(sample_challenges, tokenizer)
    no_pre_tokens = build_bpe_tokenizer(prompts, tokenizer.chat_template, None, vocab_size=2000)  # merges across "\n" + "`", "\n" + "#"
    expected = [no_pre_tokens.encode(p, add_special_tokens=False) for p in prompts]
    lines = []
    fast = PromptTokenizer(no_pre_tokens, check_first=1, check_every=10**9, log=lines.append)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == expected
    assert fast.describe()["fast"] is False
    assert lines == ["prompt tokens: encode 1 differs from the tokenizer's own encoding at token "
                     f"{fast.fallback.rsplit(' ', 1)[1]}; using the tokenizer's own encoding for every prompt "
                     "from now on"]


def test_delegates_everything_else_to_the_tokenizer(tokenizer):
    assert tokenizer.chat_template == tokenizer.tokenizer.chat_template
    assert tokenizer.eos_token_id == tokenizer.tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer.encode("1 0123\n")) == "1 0123\n"


def test_special_tokens_default_as_the_tokenizer_does(tokenizer):
    class WithBos:  # a tokenizer that adds a BOS token by default, as Llama's do
        def encode(self, text, add_special_tokens=True):
            return ([1] if add_special_tokens else []) + [ord(c) for c in text]

    fast = PromptTokenizer(WithBos())
    assert fast.encode("1 0\n") == [1, ord("1"), ord(" "), ord("0"), ord("\n")]
    assert fast.encode("1 0\n", add_special_tokens=False) == [ord("1"), ord(" "), ord("0"), ord("\n")]


def test_survives_a_pickle_round_trip(tokenizer):
    import pickle

    again = pickle.loads(pickle.dumps(tokenizer))
    assert again.encode("1 0123\n", add_special_tokens=False) == tokenizer.encode("1 0123\n", add_special_tokens=False)
