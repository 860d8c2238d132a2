"""Byte-level BPE tokenizers trained here on ARC prompt text, for the tokenizers the project must
survive rather than the one it targets: GPT-2's regex (digit runs merge, so grids do), or no
regex at all (merges across newlines, past the fast prompt path's cut points). Qwen2.5's real
tokenizer is devkit/qwen_vocab.py's.
"""

from __future__ import annotations


from devkit.tiny_model import QWEN2_PRETOKENIZE_REGEX, SPECIAL_TOKENS


def build_bpe_tokenizer(texts: list[str], chat_template: str, pre_tokenizer: str | None = "qwen2",
                        vocab_size: int = 32000):
    """A transformers fast byte-level BPE tokenizer trained on ``texts`` (e.g. rendered ARC prompts).

    ``pre_tokenizer``: "qwen2" (Qwen2's NFC and regex: every digit apart), "gpt2" (GPT-2's regex:
    digit runs stay together, so grids merge), or None (the whole text one pre-token: merges may
    span anything, newlines included).
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(fuse_unk=False, byte_fallback=False))
    if pre_tokenizer == "qwen2":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    elif pre_tokenizer in ("gpt2", None):
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=pre_tokenizer == "gpt2")
    else:
        raise ValueError(f"unknown pre-tokenizer {pre_tokenizer!r}; choose from qwen2, gpt2, None")
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                 clean_up_tokenization_spaces=False, split_special_tokens=False)
    hf.chat_template = chat_template
    return hf
