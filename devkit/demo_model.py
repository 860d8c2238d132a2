#!/usr/bin/env python3
"""Train the demo model from a seed: a small Qwen2 that solves generated ARC-like tasks.

Data: tasks of the families in devkit/families.py (never a real ARC task), drawn from
``--seed`` by step, each seen through a random view of the pipeline's augmentations and rendered
by the pipeline's own prompt code (submission/finetune.py), in the prompt format written to the
model folder's arc_format.json. Grids grow during training (sides up to 6 at first, 12 from the
middle of the run on): small tasks are learnt first and cost fewer tokens.

The model: Qwen2ForCausalLM with head_dim 64 (what vLLM's CPU attention needs), the byte-level
tokenizer of devkit/tiny_model.py. ``--preset cpu`` fits this project's 2-core machine in
about two hours; ``--preset gpu`` is the larger model trained on a lent GPU in minutes.

Training resumes from ``--out``/checkpoint.pt after a stop (same command); ``--fresh`` starts over.
At the end the folder holds the model (bfloat16 safetensors), its tokenizer, arc_format.json,
train_log.jsonl, loss_curve.svg and train.json (command, settings, seconds, held-out figures).

    python scripts/train_demo_model.py --out models/arc-demo --preset cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from devkit import train_loop
from devkit.families import FAMILIES, generate_task, generated_tasks
from devkit.tiny_model import VOCAB_MULTIPLE, _padded_vocab_size, build_tokenizer, save_model_dir
from submission import finetune
from submission.encoders import get_encoder
from submission.prompts import Unanswerable, get_template

ROOT = Path(__file__).resolve().parent.parent

ENCODER = "shape-row-numbers"
TEMPLATE = "output-from-examples-compact"
MAX_LEN = 4096  # training context; examples beyond it drop train pairs as the pipeline does
INFERENCE_LEN = 8192  # max_position_embeddings, and the max_model_len recorded for `run`

# name: model shape, tokens per step, micro-batch tokens, steps, learning rate
PRESETS = {
    "cpu": dict(hidden=256, layers=4, heads=4, kv_heads=2, intermediate=768,
                step_tokens=16_384, micro_tokens=8_192, steps=1_500, learning_rate=2e-3),
    "gpu": dict(hidden=384, layers=8, heads=6, kv_heads=2, intermediate=1_152,
                step_tokens=196_608, micro_tokens=65_536, steps=6_000, learning_rate=1.5e-3),
    "test": dict(hidden=128, layers=2, heads=2, kv_heads=1, intermediate=256,
                 step_tokens=4_096, micro_tokens=4_096, steps=20, learning_rate=3e-3),
}
CURRICULUM = ((0.0, 6), (0.25, 9), (0.5, 12))  # (share of the steps done, largest input side)


def parse_family_weights(text: str) -> dict[str, float]:
    """``"tiling=4,dihedral=2,colour-map"`` -> {family: weight}; a family without ``=`` weighs 1, a
    family not named is never drawn."""
    weights = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in FAMILIES:
            raise ValueError(f"--families: unknown family {name!r}; choose from {', '.join(FAMILIES)}")
        try:
            weights[name] = float(value) if value else 1.0
        except ValueError:
            raise ValueError(f"--families: weight of {name} is {value!r}, not a number") from None
        if weights[name] < 0:
            raise ValueError(f"--families: weight of {name} is negative")
    if not weights or sum(weights.values()) <= 0:
        raise ValueError("--families: no family with a positive weight")
    return weights


def heldout_examples(tokenizer, seed: int, n: int, max_side: int, family: str | None = None,
                     template=None, encoder=None, pair_colours: float = 0.0) -> list[finetune.TrainingExample]:
    """Held-out generated tasks rendered for scoring the test answer alone (those too long for MAX_LEN
    left out), in the training format unless a model folder's template/encoder are given."""
    tasks = generated_tasks(seed, n, purpose="heldout", max_side=max_side, family=family, pair_colours=pair_colours)
    return answer_examples(tokenizer, [(g.task, g.solution) for g in tasks], template, encoder)


def answer_examples(tokenizer, tasks_and_answers, template=None, encoder=None) -> list[finetune.TrainingExample]:
    """(task, answer of its first test input) pairs rendered for scoring the answer alone, those too
    long for MAX_LEN left out."""
    template, encoder = template or get_template(TEMPLATE), encoder or get_encoder(ENCODER)
    out = []
    for task, answer in tasks_and_answers:
        try:
            out.append(finetune.training_example(tokenizer, template, encoder, task, answer, MAX_LEN, "answer"))
        except Unanswerable:
            pass
    return out


def max_side_at(step: int, steps: int) -> int:
    done = step / max(steps, 1)
    return [side for start, side in CURRICULUM if done >= start][-1]


class StepData:
    """The micro-batches of a step, a pure function of (seed, step): resume needs no data state."""

    def __init__(self, tokenizer, seed: int, steps: int, step_tokens: int, micro_tokens: int, loss_on: str,
                 max_side: int | None = None, family_weights: dict[str, float] | None = None,
                 pair_colours: float = 0.0):
        self.tokenizer, self.seed, self.steps, self.max_side = tokenizer, seed, steps, max_side
        self.pair_colours = pair_colours
        names = list(family_weights or ())  # drawn by weight; none: generate_task draws (earlier runs' stream)
        weights = np.asarray([family_weights[n] for n in names]) if names else np.ones(0)
        self.families = names, weights / max(weights.sum(), 1e-12)
        self.step_tokens, self.micro_tokens, self.loss_on = step_tokens, micro_tokens, loss_on
        self.template, self.encoder = get_template(TEMPLATE), get_encoder(ENCODER)

    def examples(self, step: int) -> list[finetune.TrainingExample]:
        rng = np.random.default_rng([0, self.seed, step])  # stream 0: training (families.generated_tasks)
        side = self.max_side or max_side_at(step, self.steps)
        out, total = [], 0
        while total < self.step_tokens:
            g = generate_task(rng, self._family(rng), max_side=side, pair_colours=self.pair_colours)
            view = finetune.random_augmentation(rng, len(g.task.train))
            try:
                e = finetune.augmented_example(self.tokenizer, self.template, self.encoder, g.task, g.solution,
                                               view, MAX_LEN, self.loss_on)
            except Unanswerable:
                continue
            out.append(e)
            total += len(e.ids)
        return out

    def _family(self, rng: np.random.Generator) -> str | None:
        """None (generate_task draws uniformly, the stream of the runs before --families) or a
        family drawn by weight."""
        names, p = self.families
        return names[int(rng.choice(len(names), p=p))] if names else None

    def step(self, step: int) -> list[dict]:
        pad = self.tokenizer.pad_token_id
        return [finetune.pad_batch(group, pad)
                for group in finetune.batch_by_tokens(self.examples(step), self.micro_tokens)]


def stream(data: StepData, start: int, workers: int):
    """Steps from ``start`` on, built by ``workers`` processes (0: in this process), in order."""
    if workers == 0:
        step = start
        while True:
            yield data.step(step)
            step += 1
    import torch.utils.data as tud

    class Steps(tud.IterableDataset):
        def __iter__(self):
            info = tud.get_worker_info()
            step = start + (info.id if info else 0)
            while True:
                yield data.step(step)
                step += info.num_workers if info else 1

    loader = tud.DataLoader(Steps(), batch_size=None, num_workers=workers, prefetch_factor=4,
                            persistent_workers=True)
    yield from loader


def build_model(preset: dict, tokenizer, seed: int):
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    endoftext = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen2Config(
        vocab_size=_padded_vocab_size(len(tokenizer), VOCAB_MULTIPLE),
        hidden_size=preset["hidden"], intermediate_size=preset["intermediate"],
        num_hidden_layers=preset["layers"], num_attention_heads=preset["heads"],
        num_key_value_heads=preset["kv_heads"], hidden_act="silu", max_position_embeddings=INFERENCE_LEN,
        initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10_000.0},
        use_sliding_window=False, sliding_window=None, max_window_layers=preset["layers"], attention_dropout=0.0,
        bos_token_id=endoftext, eos_token_id=tokenizer.eos_token_id, pad_token_id=endoftext,
    )
    assert config.hidden_size // config.num_attention_heads == 64, "vLLM's CPU attention needs head_dim 64"
    config.architectures = ["Qwen2ForCausalLM"]
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=endoftext, eos_token_id=[tokenizer.eos_token_id, endoftext],
                                               pad_token_id=endoftext)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", default="models/arc-demo", help="model folder (default: %(default)s)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="model and batch size (default: cpu)")
    parser.add_argument("--seed", type=int, default=0, help="weights and data (default: %(default)s)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the preset's)")
    parser.add_argument("--minutes", type=float,
                        help="fit the schedule to this much training time (at the speed of the first 20 steps, refitted "
                             "every 50 steps in its first half)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda when there is one)")
    parser.add_argument("--fp32", action="store_true", help="no bfloat16 autocast")
    parser.add_argument("--loss-on", choices=finetune.LOSS_ON, default="outputs",
                        help="answer tokens counted: the test answer and every train output after the first "
                             "(outputs, default) or the test answer alone (answer)")
    parser.add_argument("--workers", type=int, default=-1,
                        help="processes building training examples (default: 0 on CPU, 12 on a GPU)")
    parser.add_argument("--heldout", type=int, default=128, help="held-out generated tasks scored every "
                        "--eval-every steps (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--fresh", action="store_true", help="delete the checkpoint and start over")
    parser.add_argument("--max-side", type=int,
                        help="largest input side of the training tasks, from the first step (default: the curriculum "
                             f"{CURRICULUM})")
    parser.add_argument("--families", metavar="NAME=WEIGHT,...",
                        help="draw the training tasks' families by these weights, e.g. 'tiling=3,dihedral=2,upscale' "
                             f"(default: all of {', '.join(FAMILIES)} alike)")
    parser.add_argument("--pair-colours", type=float, default=0.0, metavar="P",
                        help="probability that a training task gives each pair its own colours from a pool of 3-8 (40%% of "
                             "those with every cell coloured), as many real tasks do (default: %(default)s, the "
                             "stream of the earlier stages)")
    parser.add_argument("--step-tokens", type=int, help="tokens per optimizer step (default: the preset's)")
    parser.add_argument("--micro-tokens", type=int, help="padded tokens per forward pass (default: the preset's)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate (default: the preset's)")
    parser.add_argument("--init-from", metavar="MODEL",
                        help="start from this model folder's weights, or a checkpoint.pt's (same preset), instead "
                             "of random ones; the grids are full-size from the first step (no curriculum)")
    args = parser.parse_args(argv)
    if not 0 <= args.pair_colours <= 1:
        parser.error(f"--pair-colours {args.pair_colours}: a probability, from 0 to 1")
    try:
        family_weights = parse_family_weights(args.families) if args.families else None
    except ValueError as e:
        parser.error(str(e))

    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    preset = dict(PRESETS[args.preset])
    if args.step_tokens:
        preset["step_tokens"] = args.step_tokens
        preset["micro_tokens"] = min(preset["micro_tokens"], args.step_tokens)
    if args.micro_tokens:
        preset["micro_tokens"] = args.micro_tokens
    if args.learning_rate:
        preset["learning_rate"] = args.learning_rate
    steps = args.steps or preset["steps"]
    work = Path(args.out)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    model = build_model(preset, tokenizer, args.seed)
    if args.init_from:
        from safetensors.torch import load_file

        source = Path(args.init_from)
        if source.suffix == ".pt":  # a training checkpoint of this script
            weights = torch.load(source, map_location="cpu", weights_only=False)["model"]
        else:
            weights = load_file(str(source / "model.safetensors"))
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:  # lm_head is tied to the embeddings
            parser.error(f"--init-from {args.init_from}: not a {args.preset} model ({missing}, {unexpected})")
        print(f"weights from {args.init_from}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.preset}: {n_params / 1e6:.1f}M parameters, {preset['layers']} layers, hidden {preset['hidden']}, "
          f"on {device} ({'float32' if args.fp32 else 'bfloat16 autocast'}), {steps} steps of "
          f"{preset['step_tokens']:,} tokens", flush=True)

    data = StepData(tokenizer, args.seed + (1000 if args.init_from else 0), steps, preset["step_tokens"],
                    preset["micro_tokens"], args.loss_on, args.max_side or (12 if args.init_from else None), family_weights,
                    args.pair_colours)
    held = heldout_examples(tokenizer, args.seed, args.heldout, args.max_side or 12, pair_colours=args.pair_colours)
    heldout = train_loop.eval_batches(held, tokenizer.pad_token_id, preset["micro_tokens"])
    workers = args.workers if args.workers >= 0 else (12 if device != "cpu" else 0)
    if device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))  # the cores this process may use (taskset)

    settings = finetune.TrainSettings(
        steps=steps, learning_rate=preset["learning_rate"], min_learning_rate=preset["learning_rate"] / 10,
        warmup_steps=min(100, max(1, steps // 10)), bf16=not args.fp32, eval_every=args.eval_every,
        checkpoint_every=50, seed=args.seed,
        extra={"preset": args.preset, **preset, "loss_on": args.loss_on, "encoder": ENCODER, "template": TEMPLATE,
               "max_len": MAX_LEN, "curriculum": CURRICULUM if not data.max_side else None,
               "max_side": data.max_side, "init_from": args.init_from, "families": family_weights,
               "pair_colours": args.pair_colours},
    )
    started = time.time()
    summary = train_loop.train(
        model, lambda start: stream(data, start, workers), settings, work, heldout=heldout, device=device,
        time_limit=args.minutes * 60 if args.minutes else None,
    )
    model = model.to("cpu").to(torch.bfloat16).eval()
    save_model_dir(model, tokenizer, work)
    train_loop.write_format(work, ENCODER, TEMPLATE, max_model_len=INFERENCE_LEN)
    record = {
        "command": "python scripts/train_demo_model.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "parameters": n_params, "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor(),
        "torch": torch.__version__, "session_seconds": round(time.time() - started, 1), **summary,
    }
    (work / "train.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps({k: record[k] for k in ("steps", "finished", "seconds", "tokens", "heldout")}), flush=True)
    if summary["finished"]:
        print(f"model in {work}: delete {work / train_loop.CHECKPOINT} once you no longer want to resume", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
