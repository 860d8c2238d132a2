#!/usr/bin/env python3
"""Per family, how often a model writes a held-out generated task's answer exactly.

For each model and each family of devkit/families.py: ``--tasks`` held-out generated tasks
(inputs of sides up to ``--max-side``, stream "heldout", ``--seed``), each in its identity view; the
mean loss per answer token and the exact rate (teacher-forced argmax equal to every answer token,
which is what greedy decoding writes), as the training loop's held-out check measures it. The same
on the real ARC-AGI-1 tasks of each family (``--real``: every test input, identity view; for
measurement only, never training data). No vLLM: a forward pass per task in transformers, seconds
per model on this CPU. Shows where a model is weak before a run through the engine does.

    python bench/family_exact.py --models models/arc-demo,runs/train-x --max-side 4 --tasks 32
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def real_tasks(folder: Path) -> dict[str, list]:
    """Per family, (task cut to one test input, its answer) for every test input of the folder's tasks."""
    from dataclasses import replace

    from submission.tasks import load_challenges, load_solutions

    challenges, solutions = load_challenges(folder / "challenges.json"), load_solutions(folder / "solutions.json")[0]
    out: dict[str, list] = {}
    for entry in json.loads((folder / "families.json").read_text()):
        task = challenges.tasks[entry["task"]]
        for x, answer in zip(task.test_inputs, solutions[entry["task"]]):
            out.setdefault(entry["family"], []).append((replace(task, test_inputs=(x,)), answer))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--models", default=str(ROOT / "models" / "arc-demo"), help="comma-separated model folders")
    parser.add_argument("--max-side", type=int, default=4, help="largest input side (default: %(default)s)")
    parser.add_argument("--tasks", type=int, default=32, help="tasks per family (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="held-out stream seed (default: %(default)s)")
    parser.add_argument("--pair-colours", type=float, default=0.0, metavar="P",
                        help="share of tasks whose pairs each have their own colours (default: %(default)s)")
    parser.add_argument("--real", type=Path, default=ROOT / "data" / "arc-agi-1-in-family",
                        help="folder of real tasks with families.json, challenges.json and solutions.json "
                             "(default: %(default)s; 'none' skips them)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "family_exact.json")
    args = parser.parse_args(argv)

    import torch
    from devkit.tiny_model import build_tokenizer
    from devkit.demo_model import ENCODER, TEMPLATE, answer_examples, heldout_examples
    from transformers import Qwen2ForCausalLM

    from devkit import train_loop
    from submission.encoders import get_encoder
    from devkit.families import FAMILIES
    from submission.prompts import get_template, read_model_format

    tokenizer = build_tokenizer()
    real = real_tasks(args.real) if str(args.real) != "none" else {}
    results: dict[str, dict] = {}
    for model_dir in args.models.split(","):
        fmt, problem = read_model_format(model_dir)
        if problem:
            print(f"{problem}: the training script's format instead", file=sys.stderr)
        template = get_template(fmt.get("template", TEMPLATE))
        encoder = get_encoder(fmt.get("encoder", ENCODER))
        model = Qwen2ForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
        results[model_dir] = {}
        def score(examples):
            r = train_loop.evaluate_batches(model, train_loop.eval_batches(examples, tokenizer.pad_token_id, 4096),
                                          torch.device("cpu"), True)
            return {"tasks": len(examples), "loss": round(r["loss"], 4), "exact": round(r["exact"], 4)}

        for family in FAMILIES:
            results[model_dir][family] = score(heldout_examples(tokenizer, args.seed, args.tasks, args.max_side, family,
                                                                template, encoder, args.pair_colours))
            if family in real:
                results[model_dir][f"real {family}"] = score(answer_examples(tokenizer, real[family], template, encoder))
    models = list(results)
    print(f"held-out generated tasks, sides up to {args.max_side}, {args.tasks} per family, seed {args.seed}, "
          f"pair colours {args.pair_colours}: "
          "answer loss / exact")
    print("| family | " + " | ".join(models) + " |")
    print("|---|" + "---|" * len(models))
    rows = list(FAMILIES) + [f"real {family}" for family in FAMILIES if family in real]
    for row in rows:
        cells = [f"{results[m][row]['loss']:.3f} / {results[m][row]['exact']:.1%}" for m in models]
        print(f"| {row} ({results[models[0]][row]['tasks']}) | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"max_side": args.max_side, "tasks": args.tasks, "seed": args.seed,
                                    "pair_colours": args.pair_colours, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
