#!/usr/bin/env python3
"""The model users bring, in shape: a random-weight Qwen2.5-0.5B (hidden 896, 24 layers, 14 query
heads and 2 KV heads of 64, intermediate 4864, vocabulary 151,936, tied: 494M parameters) with
Qwen2.5's real tokenizer, through vLLM on real ARC-AGI-2 prompts.

Measures engine start-up, the peak resident memory of the process tree (this process and vLLM's
engine process), prefill tokens/s (full prompts, one output token each) and decode tokens/s (a
fixed number of output tokens on the same prompts, prefill time subtracted). The weights are
random: what is measured is the shape's cost, not answers. The CPU work per prediction (render,
tokenize, parse, vote) is bench/overhead.py's CPU part.

    python bench/qwen_shape.py --prompts 8 --decode-tokens 32 --out runs/bench/qwen_shape.json
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from devkit.bench_tools import finish, machine

from submission.engine import EngineSettings, GenerationRequest, VllmEngine, exit_process
from submission.encoders import DEFAULT_ENCODER, get_encoder
from submission.prompts import DEFAULT_TEMPLATE, build_prompt, get_template, load_tokenizer
from submission.tasks import load_challenges

SHAPE = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
         "intermediate_size": 4864, "max_position_embeddings": 32768}


def build_model(out: Path) -> Path:
    """Qwen2.5-0.5B's shape with random weights (seed 0) and the real tokenizer; reused when there."""
    if (out / "model.safetensors").is_file():
        return out
    import torch
    from devkit.qwen_vocab import MODEL_VOCAB, build_qwen_tokenizer
    from devkit.tiny_model import save_model_dir
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_qwen_tokenizer()
    endoftext, im_end = tokenizer.convert_tokens_to_ids("<|endoftext|>"), tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(vocab_size=MODEL_VOCAB, hidden_act="silu", rms_norm_eps=1e-6, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0}, use_sliding_window=False,
                         bos_token_id=endoftext, eos_token_id=im_end, pad_token_id=endoftext, **SHAPE)
    config.architectures = ["Qwen2ForCausalLM"]
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16).eval()
    model.generation_config = GenerationConfig(bos_token_id=endoftext, eos_token_id=[im_end, endoftext],
                                               pad_token_id=endoftext)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters -> {out}", flush=True)
    save_model_dir(model, tokenizer, out)
    return out


class PeakMemory:
    """The largest resident memory of this process and its children seen, sampled every 0.2 s."""

    def __init__(self):
        import psutil

        self.process, self.peak, self.running = psutil.Process(), 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        import psutil

        while self.running:
            total = 0
            for p in [self.process, *self.process.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.2)

    def stop(self) -> float:
        self.running = False
        self.thread.join()
        return self.peak / 2**30


def arc_prompts(tokenizer, challenges_path: Path, count: int, context: int) -> list[tuple[int, ...]]:
    """The prompts of the first ``count`` test inputs of the set (its order), arc24's format."""
    challenges = load_challenges(challenges_path)
    encoder, template = get_encoder(DEFAULT_ENCODER), get_template(DEFAULT_TEMPLATE)
    prompts = []
    for task in challenges.tasks.values():
        for i in range(len(task.test_inputs)):
            if len(prompts) < count:
                prompts.append(tuple(build_prompt(tokenizer, template, encoder, task, i, context, 1).token_ids))
    return prompts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=ROOT / "runs" / "bench" / "qwen2.5-0.5b-shape",
                   help="where the random model is built (reused when there; about 1 GB; default: %(default)s)")
    p.add_argument("--challenges", type=Path, default=ROOT / "data" / "arc-agi-2-evaluation" / "challenges.json")
    p.add_argument("--prompts", type=int, default=8, help="test inputs measured (default: %(default)s)")
    p.add_argument("--decode-tokens", type=int, default=32, help="output tokens per prompt (default: %(default)s)")
    p.add_argument("--max-model-len", type=int, default=12288)
    p.add_argument("--cpu-kv-cache-gib", type=float, default=4.0)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "qwen_shape.json")
    args = p.parse_args(argv)
    started = time.perf_counter()
    model = build_model(args.model)
    tokenizer = load_tokenizer(str(model))
    prompts = arc_prompts(tokenizer, args.challenges, args.prompts, args.max_model_len)
    prompt_tokens = sum(map(len, prompts))
    memory = PeakMemory()
    # no prefix cache: the decode call prefills the same prompts again, as long as the first call did
    engine = VllmEngine(EngineSettings(str(model), max_model_len=args.max_model_len, enable_prefix_caching=False,
                                       cpu_kv_cache_gib=args.cpu_kv_cache_gib), log=print)
    try:
        t = time.perf_counter()
        engine.generate([GenerationRequest(ids, 1) for ids in prompts])
        prefill = time.perf_counter() - t
        t = time.perf_counter()
        outputs = engine.generate([GenerationRequest(ids, args.decode_tokens) for ids in prompts])
        both = time.perf_counter() - t
    finally:
        engine.close()
    peak = memory.stop()
    generated = sum(c.token_count for out in outputs for c in out)
    figures = {
        "benchmark": "qwen_shape", "machine": machine(), "shape": SHAPE, "engine": engine.describe(),
        "prompts": len(prompts), "prompt_tokens": prompt_tokens, "engine_start_seconds": round(engine.start_seconds, 1),
        "peak_rss_gib": round(peak, 2), "prefill_seconds": round(prefill, 2),
        "prefill_tokens_per_second": round(prompt_tokens / prefill, 1),
        "generated_tokens": generated,
        "decode_tokens_per_second": round(generated / max(both - prefill, 1e-9), 2),
        "note": "decode: the second call's seconds minus the first's (the same prefill, prefix cache off)",
    }
    print(f"engine start {figures['engine_start_seconds']} s; peak RSS {peak:.2f} GiB; {len(prompts)} prompts of "
          f"{prompt_tokens} tokens: prefill {figures['prefill_tokens_per_second']} tokens/s; decode "
          f"{figures['decode_tokens_per_second']} tokens/s ({generated} tokens)")
    finish(figures, args.out, started)
    return 0


if __name__ == "__main__":
    exit_process(main)
