"""The fast prompt encoding gives exactly the tokenizer's ids, and gives itself up when it would not."""

import sys
from pathlib import Path

import pytest

from submission.encoders import ENCODERS
from submission.pipeline import RunSettings, plan_work
from submission.prompt_tokens import PromptTokenizer
from submission.prompts import TEMPLATES, render

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def sample_prompts(challenges, tokenizer, encoder="shape-row-numbers", template="output-from-examples-v1", views=8):
    settings = RunSettings(augmentations=views, encoder=encoder, template=template)
    return [
        render(tokenizer, TEMPLATES[template], ENCODERS[encoder], item.augmentation.apply_task(challenges.tasks[item.task_id]),
               item.test_index, len(challenges.tasks[item.task_id].train))
        for item in plan_work(challenges.tasks, settings)
    ]


def hf_tokenizer(backend, chat_template):
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                 clean_up_tokenization_spaces=False)
    hf.chat_template = chat_template
    return hf


def trained_bpe(texts, pre_tokenizer, chat_template):
    """A byte-level BPE trained on ``texts`` with the given pre-tokenizer (None: the whole text is one
    pre-token, so merges can span any cut point)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre_tokenizer == "gpt2-regex")
    tok.pre_tokenizer = byte_level
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=2000, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")])
    return hf_tokenizer(tok, chat_template)


@pytest.mark.parametrize("encoder", sorted(ENCODERS))
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_same_ids_as_the_tokenizer_for_every_encoder_and_template(sample_challenges, tokenizer, encoder, template):
    fast = PromptTokenizer(tokenizer.tokenizer, check_first=0, check_every=10**9)
    prompts = sample_prompts(sample_challenges, tokenizer, encoder, template)
    assert len(prompts) == 80
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [tokenizer.tokenizer.encode(p, add_special_tokens=False)
                                                 for p in prompts]
    assert fast.describe() == {"fast": True, "grid_rows_per_character": True, "prompts": 80, "checked": 0,
                               "fallback": None}


def test_same_ids_with_a_qwen2_style_bpe(sample_challenges, tokenizer):
    from qwen_like import build_qwen_like_tokenizer, merges_count

    prompts = sample_prompts(sample_challenges, tokenizer)
    qwen = build_qwen_like_tokenizer(prompts, tokenizer.chat_template)
    assert merges_count(qwen) > 100  # a real BPE: the instructions are merged, digits stay apart
    fast = PromptTokenizer(qwen, check_first=0, check_every=10**9)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [qwen.encode(p, add_special_tokens=False) for p in prompts]
    assert fast.describe()["grid_rows_per_character"] is True and fast.fallback is None


def test_checks_the_first_prompts_and_one_in_every_check_every(sample_challenges, tokenizer):
    fast = PromptTokenizer(tokenizer.tokenizer, check_first=3, check_every=20)
    for p in sample_prompts(sample_challenges, tokenizer):
        fast.encode(p, add_special_tokens=False)
    assert (fast.calls, fast.checked) == (80, 3 + 4)  # prompts 1-3, then 20, 40, 60, 80


def test_a_tokenizer_that_merges_digits_gets_exact_ids_without_the_per_character_path(sample_challenges, tokenizer):
    prompts = sample_prompts(sample_challenges, tokenizer)
    gpt2_like = trained_bpe(prompts, "gpt2-regex", tokenizer.chat_template)  # \p{N}+: digit runs merge
    assert len(gpt2_like.encode("0000000000", add_special_tokens=False)) < 10
    fast = PromptTokenizer(gpt2_like, check_first=0, check_every=10**9)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == [gpt2_like.encode(p, add_special_tokens=False) for p in prompts]
    assert fast.describe()["grid_rows_per_character"] is False and fast.fallback is None


def test_a_tokenizer_whose_tokens_span_the_cut_points_falls_back_on_the_first_check(sample_challenges, tokenizer):
    prompts = sample_prompts(sample_challenges, tokenizer)
    no_pre_tokens = trained_bpe(prompts, None, tokenizer.chat_template)  # merges across "\n" + "`", "\n" + "#"
    expected = [no_pre_tokens.encode(p, add_special_tokens=False) for p in prompts]
    lines = []
    fast = PromptTokenizer(no_pre_tokens, check_first=1, check_every=10**9, log=lines.append)
    assert [fast.encode(p, add_special_tokens=False) for p in prompts] == expected
    assert fast.describe()["fast"] is False
    assert lines == ["prompt tokens: prompt 1 differs from the tokenizer's own encoding at token "
                     f"{fast.fallback.rsplit(' ', 1)[1]}; using the tokenizer's own encoding for every prompt "
                     "from now on"]


def test_delegates_everything_else_to_the_tokenizer(tokenizer):
    assert tokenizer.chat_template == tokenizer.tokenizer.chat_template
    assert tokenizer.eos_token_id == tokenizer.tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer.encode("1 0123\n")) == "1 0123\n"
    assert tokenizer.encode("x", add_special_tokens=True) == tokenizer.tokenizer.encode("x", add_special_tokens=True)


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
