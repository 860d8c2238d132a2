#!/usr/bin/env python3
"""Training speed of the demo model's presets on this machine: float32 against bfloat16 autocast.

Each (preset, precision) trains ``--steps`` steps on the same generated data (scripts/
train_demo_model.py's StepData) after ``--warmup`` untimed ones, interleaved so that the machine's
load falls on both alike; prints tokens per second and the ratio, and writes them as JSON.

    python bench/train_speed.py --presets cpu,gpu --steps 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from devkit.bench_tools import machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--presets", default="cpu", help="comma-separated presets of train_demo_model.py")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per preset and precision")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--step-tokens", type=int, default=16_384, help="tokens per step (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "train_speed.json")
    args = parser.parse_args(argv)

    import torch
    from devkit.tiny_model import build_tokenizer
    from devkit.demo_model import PRESETS, StepData, build_model

    from submission.finetune import IGNORE

    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    data = StepData(tokenizer, seed=0, steps=1000, step_tokens=args.step_tokens, micro_tokens=8192,
                    loss_on="outputs", max_side=8)
    steps = [data.step(i) for i in range(args.warmup + args.steps)]
    results = {}
    for name in args.presets.split(","):
        models = {bf16: build_model(PRESETS[name], tokenizer, seed=0) for bf16 in (False, True)}
        optimizers = {bf16: torch.optim.AdamW(m.parameters(), lr=1e-4) for bf16, m in models.items()}
        seconds, tokens = {False: 0.0, True: 0.0}, 0
        for i, micro_batches in enumerate(steps):
            for bf16 in (False, True):  # interleaved: the same load on both
                model, optimizer = models[bf16], optimizers[bf16]
                start = time.perf_counter()
                counted = sum(int((mb["labels"][:, 1:] != IGNORE).sum()) for mb in micro_batches)
                for mb in micro_batches:
                    batch = {k: torch.as_tensor(mb[k]) for k in ("input_ids", "attention_mask", "labels")}
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        loss = model(**batch).loss
                    share = int((mb["labels"][:, 1:] != IGNORE).sum()) / counted
                    (loss * share).backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if i >= args.warmup:
                    seconds[bf16] += time.perf_counter() - start
            if i >= args.warmup:
                tokens += sum(int(mb["attention_mask"].sum()) for mb in micro_batches)
        n_params = sum(p.numel() for p in models[False].parameters())
        results[name] = {"parameters": n_params, "tokens": tokens,
                         "fp32_tokens_per_s": round(tokens / seconds[False]),
                         "bf16_tokens_per_s": round(tokens / seconds[True]),
                         "bf16_speedup": round(seconds[False] / seconds[True], 2)}
        print(f"{name}: {n_params / 1e6:.1f}M parameters: float32 {results[name]['fp32_tokens_per_s']:,} tokens/s, "
              f"bfloat16 autocast {results[name]['bf16_tokens_per_s']:,} tokens/s "
              f"({results[name]['bf16_speedup']}x)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "torch_threads": torch.get_num_threads(),
                                    "command": "python bench/train_speed.py " + " ".join(sys.argv[1:]),
                                    "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
