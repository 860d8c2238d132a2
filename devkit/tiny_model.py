#!/usr/bin/env python3
"""Build a tiny, deterministic Qwen2 causal LM that vLLM loads like Qwen2.5.

The result is a regular Hugging Face model directory (config.json,
generation_config.json, model.safetensors, tokenizer.json,
tokenizer_config.json, chat_template.jinja, ...) that both
``transformers.AutoModelForCausalLM`` / ``AutoTokenizer`` and vLLM load offline.

* Architecture: ``Qwen2ForCausalLM`` with head_dim 64 (a head size the vLLM CPU
  attention backend supports), 2 layers, GQA (2 query heads / 1 KV head), tied
  embeddings, bfloat16 weights, vocab padded to a multiple of 64 -- about
  0.7 MB on disk.
* Tokenizer: byte-level BPE with **no merges**, so every byte (every digit,
  space, newline, backtick ...) is exactly one token, as in Qwen's tokenizer
  for ASCII digits/whitespace. Token id == byte value for ids 0..255, followed
  by the Qwen special tokens ``<|endoftext|>``, ``<|im_start|>``,
  ``<|im_end|>``.
* Chat template: Qwen2.5-style ChatML with the default system message
  "You are a helpful assistant." when none is supplied.

Weights come from ``torch.manual_seed(seed)`` and are byte-identical across runs
with the same seed.

Usage:
    python scripts/build_tiny_model.py [--out models/tiny-qwen2] [--seed 0]
        [--max-position-embeddings 8192]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
DEFAULT_SYSTEM_MESSAGE = "You are a helpful assistant."

# Qwen2.5-style ChatML template (no tool support).
CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM_MESSAGE + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# Qwen2 pre-tokenization regex (same as transformers' tokenization_qwen2.py).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Model shape.
HIDDEN_SIZE = 128
NUM_ATTENTION_HEADS = 2  # head_dim = 128 / 2 = 64
NUM_KEY_VALUE_HEADS = 1
NUM_HIDDEN_LAYERS = 2
INTERMEDIATE_SIZE = 256
VOCAB_MULTIPLE = 64
ROPE_THETA = 1_000_000.0  # as in Qwen2.5


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / Qwen byte -> printable unicode char mapping (ByteLevel alphabet)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def build_tokenizer():
    """Return a transformers fast tokenizer (byte-level BPE, no merges)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_map = _bytes_to_unicode()
    vocab = {byte_map[b]: b for b in range(256)}  # token id == byte value
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], fuse_unk=False, byte_fallback=False))
    # Exactly Qwen2's pipeline (transformers 5 re-creates it anyway: AutoTokenizer
    # maps model_type "qwen2" to Qwen2Tokenizer, which sets NFC + this split).
    # With no merges the split does not change ids; NFC only touches non-NFC text.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = None
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=False, rstrip=False) for t in SPECIAL_TOKENS]
    )

    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
        padding_side="right",
        split_special_tokens=False,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    return hf_tok


def _padded_vocab_size(n: int, multiple: int = VOCAB_MULTIPLE) -> int:
    return ((n + multiple - 1) // multiple) * multiple


def save_model_dir(model, tokenizer, out: Path) -> None:
    """Write model + tokenizer as a folder that transformers (old and new) and vLLM load offline."""
    out = Path(out)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="1GB")
    tokenizer.save_pretrained(out)

    # Real Qwen2.5 checkpoints carry "torch_dtype"; transformers 5 writes "dtype".
    # Write both so every loader (old/new transformers, vLLM) sees bfloat16.
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["torch_dtype"] = "bfloat16"
    cfg["dtype"] = "bfloat16"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    # transformers 5 writes tokenizer_class "TokenizersBackend" and puts the chat
    # template only in chat_template.jinja. Use the portable class name
    # (PreTrainedTokenizerFast is an alias of it in transformers 5) and also
    # embed the template in tokenizer_config.json, as Qwen2.5 checkpoints do,
    # so older transformers versions load the same tokenizer + template.
    tc_path = out / "tokenizer_config.json"
    tc = json.loads(tc_path.read_text())
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc["chat_template"] = CHAT_TEMPLATE
    tc["add_bos_token"] = False
    tc["add_eos_token"] = False
    tc_path.write_text(json.dumps(tc, indent=2, sort_keys=True) + "\n")

    for p in out.iterdir():
        if p.is_file():
            p.chmod(0o644)


VOCABULARIES = ("bytes", "qwen2.5")


def build_tiny_model(out_dir, seed: int = 0, max_position_embeddings: int = 8192, vocabulary: str = "bytes") -> Path:
    """Build the tiny model + tokenizer into ``out_dir`` and return its Path. ``vocabulary``: the
    byte-level one (259 tokens: fast, one token per character) or Qwen2.5's real tokenizer
    (build_qwen_tokenizer.py) with Qwen2.5-0.5B's 151,936 embedding rows, tied (about 40 MB)."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    if vocabulary == "qwen2.5":
        from devkit.qwen_vocab import MODEL_VOCAB, build_qwen_tokenizer

        tokenizer, vocab_size = build_qwen_tokenizer(), MODEL_VOCAB
    elif vocabulary == "bytes":
        tokenizer = build_tokenizer()
        vocab_size = _padded_vocab_size(len(tokenizer))
    else:
        raise ValueError(f"vocabulary {vocabulary!r}: choose from {', '.join(VOCABULARIES)}")
    endoftext_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    im_end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token_id == im_end_id
    assert tokenizer.pad_token_id == endoftext_id

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=HIDDEN_SIZE,
        intermediate_size=INTERMEDIATE_SIZE,
        num_hidden_layers=NUM_HIDDEN_LAYERS,
        num_attention_heads=NUM_ATTENTION_HEADS,
        num_key_value_heads=NUM_KEY_VALUE_HEADS,
        hidden_act="silu",
        max_position_embeddings=max_position_embeddings,
        initializer_range=0.02,
        rms_norm_eps=1e-6,
        use_cache=True,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        use_sliding_window=False,
        sliding_window=None,
        max_window_layers=NUM_HIDDEN_LAYERS,
        attention_dropout=0.0,
        # Same convention as Qwen2.5-Instruct: bos = <|endoftext|>, eos = <|im_end|>.
        bos_token_id=endoftext_id,
        eos_token_id=im_end_id,
        pad_token_id=endoftext_id,
    )
    config.architectures = ["Qwen2ForCausalLM"]
    config.dtype = torch.bfloat16

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model = model.to(torch.bfloat16).eval()

    # Like Qwen2.5-Instruct: stop on <|im_end|> or <|endoftext|>. No sampling
    # defaults (temperature/top_p/...) so vLLM's defaults are not altered.
    model.generation_config = GenerationConfig(
        bos_token_id=endoftext_id,
        eos_token_id=[im_end_id, endoftext_id],
        pad_token_id=endoftext_id,
    )

    save_model_dir(model, tokenizer, out)
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def self_check(out: Path) -> None:
    """Sanity checks on a built model directory (raises AssertionError)."""
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out)
    cfg = AutoConfig.from_pretrained(out)

    samples = [
        "hello world",
        "0 1 2\n3 4 5\n\n```\n[[0, 1], [2, 3]]\n```\n",
        "  leading spaces, `backticks`, tabs\tand trailing newline\n",
        "",
    ]
    for s in samples:
        ids = tok.encode(s, add_special_tokens=False)
        assert len(ids) == len(s.encode("utf-8")), (s, ids)
        assert tok.decode(ids) == s, (s, tok.decode(ids))
    # The class AutoTokenizer picks (Qwen2Tokenizer in transformers 5) and the raw
    # tokenizer.json must agree.
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    for s in samples + ["<|im_start|>user\nx<|im_end|>\n", "caf\u00e9 \u4e2d\u6587"]:
        assert raw.encode(s, add_special_tokens=False).ids == tok.encode(s, add_special_tokens=False), s
    digits = tok.encode("0123456789 \n", add_special_tokens=False)
    assert digits == list(b"0123456789 \n"), digits
    # Special tokens are single ids, and are not split.
    for t in SPECIAL_TOKENS:
        assert tok.encode(t, add_special_tokens=False) == [tok.convert_tokens_to_ids(t)]

    msgs = [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "Q\n1 2"},
        {"role": "assistant", "content": "A"},
    ]
    rendered = tok.apply_chat_template(msgs, tokenize=False)
    assert rendered == (
        "<|im_start|>system\nSYS<|im_end|>\n"
        "<|im_start|>user\nQ\n1 2<|im_end|>\n"
        "<|im_start|>assistant\nA<|im_end|>\n"
    ), repr(rendered)
    rendered = tok.apply_chat_template(msgs[1:2], tokenize=False, add_generation_prompt=True)
    assert rendered == (
        f"<|im_start|>system\n{DEFAULT_SYSTEM_MESSAGE}<|im_end|>\n"
        "<|im_start|>user\nQ\n1 2<|im_end|>\n"
        "<|im_start|>assistant\n"
    ), repr(rendered)

    assert cfg.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")
    assert cfg.bos_token_id == tok.convert_tokens_to_ids("<|endoftext|>") == tok.pad_token_id
    assert cfg.vocab_size % VOCAB_MULTIPLE == 0 and cfg.vocab_size >= len(tok)
    assert cfg.hidden_size // cfg.num_attention_heads == 64

    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    assert total < 2 * 1024 * 1024, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="models/tiny-qwen2", help="output directory (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed for weights (default: %(default)s)")
    parser.add_argument(
        "--max-position-embeddings",
        type=int,
        default=8192,
        help="config.max_position_embeddings (default: %(default)s)",
    )
    parser.add_argument("--vocab", choices=VOCABULARIES, default="bytes",
                        help="bytes: the byte-level test vocabulary; qwen2.5: Qwen2.5's real tokenizer and its "
                             "151,936-row embedding (default: %(default)s)")
    parser.add_argument("--skip-check", action="store_true", help="skip the post-build sanity checks")
    args = parser.parse_args(argv)

    out = build_tiny_model(args.out, seed=args.seed, max_position_embeddings=args.max_position_embeddings,
                           vocabulary=args.vocab)
    if not args.skip_check and args.vocab == "bytes":
        self_check(out)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"built {out} ({total} bytes total)")
    print(f"model.safetensors sha256 {_sha256(out / 'model.safetensors')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
