"""A Qwen2-style tokenizer built offline, for measuring tokenization cost realistically.

The tiny model's tokenizer has no merges (one token per byte), which makes tokenizing cheaper
and prompts longer than with a real Qwen2.5 tokenizer. No real one can be downloaded here, so
this builds the same kind: Qwen2's normalizer (NFC), pre-tokenizer regex and byte-level BPE,
with merges trained on ARC prompt text, and the tiny model's ChatML template. Like Qwen's, it
splits every digit apart, so grids cost about as many tokens as with the real one; the English
text of the prompt compresses as BPE does. Its vocabulary is far smaller than Qwen2.5's 151k
(which matters little: a merge is a hash lookup whatever the vocabulary's size).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from build_tiny_model import QWEN2_PRETOKENIZE_REGEX, SPECIAL_TOKENS  # noqa: E402


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


def build_qwen_like_tokenizer(texts: list[str], chat_template: str, vocab_size: int = 32000):
    """Qwen2's normalizer, regex and byte-level BPE with merges trained on ``texts``."""
    return build_bpe_tokenizer(texts, chat_template, "qwen2", vocab_size)


def merges_count(tokenizer) -> int:
    import json

    return len(json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"])
