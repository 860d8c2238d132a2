#!/usr/bin/env python3
"""Prompt lengths of a task set with a real tokenizer, for every encoder and template.

For every test input of every task, seen through --views views (the run's own plan), the prompt
with all train examples is rendered and tokenized (prompt_tokens' fast exact path, checked against
the tokenizer on every prompt here); printed per encoder and template: median, p90 and max tokens,
and how many prompts must drop a train example to leave room for the answer budget at each
--contexts value. No engine.

    python scripts/build_qwen_tokenizer.py --out models/qwen2.5-tokenizer
    python bench/prompt_lengths.py --tokenizer models/qwen2.5-tokenizer \\
        --challenges data/arc-agi-2-evaluation/challenges.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from submission.encoders import ENCODERS
from submission.pipeline import plan_work
from submission.settings import RunSettings
from submission.prompt_tokens import PromptTokenizer
from submission.prompts import TEMPLATES, answer_token_budget, render
from submission.tasks import load_challenges


def lengths(challenges, tokenizer: PromptTokenizer, encoder: str, template: str, views: int):
    """(full prompt tokens, answer budget) per prompt."""
    settings = RunSettings.of(augmentations=views, encoder=encoder, template=template)
    out = []
    for item in plan_work(challenges.tasks, settings):
        task = item.augmentation.apply_task(challenges.tasks[item.task_id])
        text = render(tokenizer, TEMPLATES[template], ENCODERS[encoder], task, item.test_index, len(task.train))
        out.append((len(tokenizer.encode(text, add_special_tokens=False)),
                    answer_token_budget(tokenizer, ENCODERS[encoder], task)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tokenizer", required=True, help="a folder with the tokenizer (Qwen2.5's: build_qwen_tokenizer.py)")
    p.add_argument("--challenges", type=Path, default=ROOT / "data" / "arc-agi-2-evaluation" / "challenges.json")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--contexts", type=int, nargs="+", default=[8192, 12288, 16384])
    p.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = p.parse_args(argv)

    from transformers import AutoTokenizer

    tokenizer = PromptTokenizer(AutoTokenizer.from_pretrained(args.tokenizer), check_first=10**9, log=print)
    challenges = load_challenges(args.challenges)
    print(f"{args.challenges}: {len(challenges.tasks)} tasks, {args.views} views; tokenizer {args.tokenizer} "
          f"({len(tokenizer.tokenizer):,} tokens); every prompt checked against the tokenizer's own encoding")
    header = "| encoder | template | prompts | median | p90 | max | " + " | ".join(
        f"drop at {c}" for c in args.contexts) + " |"
    print(header + "\n|" + " --- |" * (header.count("|") - 1))
    figures = []
    started = time.perf_counter()
    for encoder in ENCODERS:
        for template in TEMPLATES:
            found = np.array(lengths(challenges, tokenizer, encoder, template, args.views))
            tokens, budgets = found[:, 0], found[:, 1]
            drops = {c: int(((tokens + budgets) > c).sum()) for c in args.contexts}
            row = {"encoder": encoder, "template": template, "prompts": len(tokens),
                   "median": int(np.median(tokens)), "p90": int(np.percentile(tokens, 90)), "max": int(tokens.max()),
                   "drop": drops}
            figures.append(row)
            print(f"| {encoder} | {template} | {row['prompts']} | {row['median']:,} | {row['p90']:,} | {row['max']:,} | "
                  + " | ".join(str(drops[c]) for c in args.contexts) + " |")
    described = tokenizer.describe()
    print(f"{described['encodes']} prompts in {time.perf_counter() - started:.0f}s; fast path exact on all of them: "
          f"{described['fallback'] is None and described['checked'] == described['encodes']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"figures": figures, "tokenizer": described}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
