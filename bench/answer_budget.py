#!/usr/bin/env python3
"""Whether every real answer fits the answer budget, and what the budget costs the prompts.

Over ARC sets in Kaggle's layout (training and evaluation, with solutions): test outputs larger
than prompts.answer_side_bound (each named: it would be cut at max_tokens, never right), prompts
that lose train examples to fit --context beside the answer budget, and test outputs equal to
their input (the reason selection ranks a copy of the input last). No engine: a tokenizer only.

    python bench/answer_budget.py --arc ../shared/data/arc-agi-1 ../shared/data/arc-agi-2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from submission.encoders import DEFAULT_ENCODER, get_encoder
from submission.prompts import (DEFAULT_TEMPLATE, Unanswerable, answer_side_bound, answer_token_budget,
                                build_prompt, get_template, load_tokenizer, read_model_format)
from submission.tasks import load_challenges, load_solutions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arc", type=Path, nargs="+", default=[ROOT.parent / "shared" / "data" / "arc-agi-1"],
                        help="folders with arc-agi_{training,evaluation}_{challenges,solutions}.json")
    parser.add_argument("--model", default=str(ROOT / "models" / "arc-demo"),
                        help="whose tokenizer and prompt format (arc_format.json) count the tokens")
    parser.add_argument("--context", type=int, default=8192)
    args = parser.parse_args(argv)

    tokenizer = load_tokenizer(args.model)
    fmt, _ = read_model_format(args.model)
    encoder_name = fmt.get("encoder", DEFAULT_ENCODER)
    encoder, template = get_encoder(encoder_name), get_template(fmt.get("template", DEFAULT_TEMPLATE))
    print(f"prompt format: encoder {encoder_name}, template {template.name}")
    for arc, split in ((arc, split) for arc in args.arc for split in ("training", "evaluation")):
        challenges = load_challenges(arc / f"arc-agi_{split}_challenges.json")
        solutions, _ = load_solutions(arc / f"arc-agi_{split}_solutions.json")
        answers = past_bound = trimmed = unanswerable = copies = 0
        too_large = []
        for task_id, task in challenges.tasks.items():
            bound, budget = answer_side_bound(task), answer_token_budget(tokenizer, encoder, task)
            for i, answer in enumerate(solutions.get(task_id, ())):
                answers += 1
                if max(answer.shape) > bound:
                    past_bound += 1
                    too_large.append(f"{task_id}[{i}] {answer.shape[0]}x{answer.shape[1]} > {bound}")
                copies += bool(np.array_equal(answer, task.test_inputs[i]))
                try:
                    prompt = build_prompt(tokenizer, template, encoder, task, i, args.context, budget)
                    trimmed += prompt.examples_dropped > 0
                except Unanswerable:
                    unanswerable += 1
        print(f"{arc.name} {split}: {answers} test outputs, {past_bound} larger than the answer bound, {copies} equal to their "
              f"input; at context {args.context}: {trimmed} prompts drop train examples, {unanswerable} unanswerable")
        for line in too_large:
            print(f"  does not fit: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
