"""Fine-tuning: examples are the pipeline's prompts plus answers; the loop learns, checkpoints, resumes."""

import argparse
import json

import numpy as np
import pytest

from submission import finetune
from submission.encoders import get_encoder, parse_answer
from devkit import train_loop
from devkit.families import generated_tasks
from submission.pipeline import plan_work, prepare_requests
from submission.settings import RunSettings
from submission.prompts import FORMAT_FILE, get_template, read_model_format
from submission.tasks import Task

ENCODER, TEMPLATE = "shape-row-numbers", "output-from-examples-compact"


def one_test(task: Task, index: int) -> Task:
    return Task(task.id, task.train, (task.test_inputs[index],))


@pytest.mark.parametrize("task_id", ["e345f17b", "00576224"])
def test_training_example_is_the_pipelines_prompt_then_the_answer(task_id, sample_challenges, sample_solutions,
                                                                   tokenizer):
    task = one_test(sample_challenges.tasks[task_id], 0)
    answer = sample_solutions[task_id][0]
    settings = RunSettings.of(augmentations=12, encoder=ENCODER, template=TEMPLATE)
    encoder = get_encoder(ENCODER)
    items = [i for i in plan_work({task.id: task}, settings) if i.test_index == 0]
    assert any("-c" in str(i.augmentation) for i in items)  # colour and order views too
    ready, misses = prepare_requests({task.id: task}, items, tokenizer, 8192, settings, log=lambda _: None)
    assert not misses and len(ready) == 12
    for item, request in ready:
        example = finetune.augmented_example(tokenizer, get_template(TEMPLATE), encoder, task, answer,
                                             item.augmentation, 8192)
        assert tuple(example.ids[: example.prompt_tokens]) == request.prompt_token_ids
        completion = tokenizer.decode(list(example.ids[example.prompt_tokens:]))
        view_answer = item.augmentation.apply_grid(answer)
        assert completion == encoder.encode(view_answer)[len(encoder.answer_start):] + "<|im_end|>"
        # what the model would write parses back (stop string cut) to the answer, and un-augments to it
        parsed = parse_answer(encoder, completion[: completion.index("```") + 3])
        assert np.array_equal(item.augmentation.invert_grid(parsed), answer)


def test_loss_counts_the_answer_and_the_train_outputs_after_the_first(sample_challenges, sample_solutions, tokenizer):
    task = one_test(sample_challenges.tasks["e345f17b"], 0)
    encoder, template = get_encoder(ENCODER), get_template(TEMPLATE)
    answer = sample_solutions["e345f17b"][0]
    counted = {}
    for loss_on in finetune.LOSS_ON:
        e = finetune.training_example(tokenizer, template, encoder, task, answer, 8192, loss_on)
        counted[loss_on] = e
        labelled = e.labels != finetune.IGNORE
        assert np.array_equal(e.labels[labelled], e.ids[labelled])
        assert labelled[e.prompt_tokens:].all()
    answer_only = counted["answer"]
    assert not (answer_only.labels[: answer_only.prompt_tokens] != finetune.IGNORE).any()
    outputs = counted["outputs"]
    ids, labels = outputs.ids[: outputs.prompt_tokens], outputs.labels[: outputs.prompt_tokens]
    # the labelled runs of the prompt, decoded, are exactly train outputs 2..n after "```grid"
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != finetune.IGNORE:
            current.append(int(token))
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    assert runs == [encoder.encode(ex.output)[len("```grid"):] for ex in task.train[1:]]


def test_a_task_too_long_drops_examples_like_the_pipeline(sample_challenges, sample_solutions, tokenizer):
    task = one_test(sample_challenges.tasks["e345f17b"], 0)
    full = finetune.training_example(tokenizer, get_template(TEMPLATE), get_encoder(ENCODER), task,
                                     sample_solutions["e345f17b"][0], 8192)
    short = finetune.training_example(tokenizer, get_template(TEMPLATE), get_encoder(ENCODER), task,
                                      sample_solutions["e345f17b"][0], len(full.ids) - 1)
    assert len(short.ids) < len(full.ids) and short.answer_tokens == full.answer_tokens


def _fixed_batches(tokenizer, n_tasks=6):
    encoder, template = get_encoder(ENCODER), get_template(TEMPLATE)
    examples = [finetune.training_example(tokenizer, template, encoder, g.task, g.solution, 2048)
                for g in generated_tasks(0, n_tasks, purpose="test", max_side=4)]
    micro = [finetune.pad_batch(group, tokenizer.pad_token_id) for group in finetune.batch_by_tokens(examples, 2048)]

    def batches(start):
        while True:
            yield micro
    return examples, batches


def test_a_few_steps_lower_the_loss_and_a_stopped_run_resumes(tmp_path, tokenizer):
    torch = pytest.importorskip("torch")  # in requirements-dev.txt: never skipped in make test
    from devkit.demo_model import PRESETS, build_model

    examples, batches = _fixed_batches(tokenizer)
    model = build_model(PRESETS["test"], tokenizer.tokenizer, seed=0)
    held = train_loop.eval_batches(examples, tokenizer.pad_token_id, 4096)
    settings = finetune.TrainSettings(steps=24, learning_rate=3e-3, warmup_steps=2, eval_every=12,
                                      checkpoint_every=4)
    before = train_loop.evaluate_batches(model, held, torch.device("cpu"), True)["loss"]
    lines = []
    first = train_loop.train(model, batches, settings, tmp_path, heldout=held, log=lines.append,
                           stop_after_seconds=0.0)
    assert first["steps"] == 1 and not first["finished"]  # stopped after its first step, checkpoint written
    assert any("stopping at step 1" in line for line in lines)
    model = build_model(PRESETS["test"], tokenizer.tokenizer, seed=1)  # fresh weights: resume must restore them
    second = train_loop.train(model, batches, settings, tmp_path, heldout=held, log=lines.append)
    assert any(line.startswith(f"resuming from {tmp_path / train_loop.CHECKPOINT} at step 1") for line in lines)
    assert second["steps"] == 24 and second["finished"]
    after = second["heldout"]["loss"]
    assert after < 0.7 * before, (before, after)
    records = train_loop.read_log(tmp_path / train_loop.LOG)
    assert [r["step"] for r in records if "loss" in r] == [10, 20, 24]
    assert [r["step"] for r in records if "heldout_loss" in r] == [12, 24]
    svg = (tmp_path / "loss_curve.svg").read_text()
    assert svg.count("<polyline") == 3


def test_model_format_file(tmp_path):
    assert read_model_format(tmp_path) == ({}, None)  # none: the CLI's defaults, silently
    train_loop.write_format(tmp_path, ENCODER, TEMPLATE, max_model_len=8192)
    assert read_model_format(tmp_path) == ({"encoder": ENCODER, "template": TEMPLATE}, None)
    (tmp_path / FORMAT_FILE).write_text("{not json")
    found, problem = read_model_format(tmp_path)
    assert found == {} and problem.startswith(f"{tmp_path / FORMAT_FILE}: not readable JSON")
    (tmp_path / FORMAT_FILE).write_text(json.dumps({"encoder": "nope", "template": TEMPLATE}))
    found, problem = read_model_format(tmp_path)
    assert found == {"template": TEMPLATE} and "encoder 'nope' is not one of" in problem
    path = tmp_path / FORMAT_FILE
    path.write_text(json.dumps({"encoder": "nope", "template": "v9"}))
    assert read_model_format(tmp_path) == ({}, (
        f"{path}: encoder 'nope' is not one of code-block-minimal, code-block-row-numbers, minimal, row-numbers, "
        "shape-row-numbers; template 'v9' is not one of output-from-examples-compact, output-from-examples-v0, "
        "output-from-examples-v1"))
    path.write_text(json.dumps({"template": TEMPLATE}))  # no encoder: the template still counts
    assert read_model_format(tmp_path) == ({"template": TEMPLATE}, None)
    path.write_text("[1, 2]")
    assert read_model_format(tmp_path) == ({}, f"{path}: expected an object with encoder and template, got list")


def test_run_takes_the_format_from_the_model_folder_and_warns_on_a_contradiction(tmp_path, capsys):
    from submission.cli import resolve_prompt_format

    train_loop.write_format(tmp_path, "minimal", TEMPLATE)
    args = argparse.Namespace(model=str(tmp_path), encoder=None, template=None)
    resolve_prompt_format(args)
    assert (args.encoder, args.template) == ("minimal", TEMPLATE)
    assert capsys.readouterr().out == (f"run: prompt format from {tmp_path / FORMAT_FILE}: encoder minimal, "
                                       f"template {TEMPLATE}\n")
    args = argparse.Namespace(model=str(tmp_path), encoder="shape-row-numbers", template=None)
    resolve_prompt_format(args)
    out = capsys.readouterr().out
    assert args.encoder == "shape-row-numbers" and "warning: --encoder shape-row-numbers contradicts" in out
    (tmp_path / FORMAT_FILE).write_text("[]")
    args = argparse.Namespace(model=str(tmp_path), encoder=None, template=None)
    resolve_prompt_format(args)
    assert (args.encoder, args.template) == ("shape-row-numbers", "output-from-examples-v1")
    assert capsys.readouterr().out.count("\n") == 1  # one line says the file is unusable


def test_family_weights_are_parsed_exactly_and_bad_ones_named():
    from devkit.demo_model import parse_family_weights

    assert parse_family_weights("tiling=4, dihedral=2,colour-map") == {"tiling": 4.0, "dihedral": 2.0,
                                                                       "colour-map": 1.0}
    for text, message in [("tilings=2", "unknown family 'tilings'"), ("tiling=x", "weight of tiling is 'x'"),
                          ("tiling=-1", "weight of tiling is negative"), ("tiling=0", "no family with a positive"),
                          ("", "no family with a positive")]:
        with pytest.raises(ValueError, match=message):
            parse_family_weights(text)


def test_training_tasks_are_drawn_from_the_weighted_families_only(tokenizer):
    from devkit.demo_model import StepData

    weighted = StepData(tokenizer.tokenizer, 0, 10, 4096, 4096, "outputs", 4, {"tiling": 3.0, "dihedral": 1.0})
    rng = np.random.default_rng(0)
    drawn = [weighted._family(rng) for _ in range(4000)]
    assert set(drawn) == {"tiling", "dihedral"}
    assert abs(drawn.count("tiling") / 4000 - 0.75) < 0.03
    plain = StepData(tokenizer.tokenizer, 0, 10, 4096, 4096, "outputs", 4)
    assert plain._family(np.random.default_rng(0)) is None  # generate_task draws: the stream of earlier runs


def test_pair_colours_reach_the_training_tasks_and_zero_keeps_the_earlier_stream(tokenizer):
    from devkit.demo_model import StepData

    def step_ids(**kwargs):
        data = StepData(tokenizer.tokenizer, 0, 10, 2048, 2048, "outputs", 4, {"dihedral": 1.0}, **kwargs)
        return [e.ids.tolist() for e in data.examples(3)]

    assert step_ids(pair_colours=0.0) == step_ids()
    varied = step_ids(pair_colours=1.0)
    assert varied != step_ids()


def test_fit_steps_ends_the_schedule_with_the_time():
    assert train_loop.fit_steps(20, 2.0, 100.0, 1000) == 70
    assert train_loop.fit_steps(20, 2.0, 10_000.0, 1000) == 1000  # never longer than asked
    assert train_loop.fit_steps(20, 2.0, -5.0, 1000) == 21  # out of time: one more step ends the schedule


def test_a_time_limit_holds_when_steps_slow_down_after_the_first_ones(tmp_path, tokenizer):
    pytest.importorskip("torch")  # in requirements-dev.txt: never skipped in make test
    from devkit.demo_model import PRESETS, build_model

    _, fixed = _fixed_batches(tokenizer, n_tasks=2)
    now = [0.0]

    def slowing(start):  # a fake clock: the first 20 steps take 1 s each, every later one 3 s
        for step, micro in enumerate(fixed(start), start=start):
            now[0] += 1.0 if step < 20 else 3.0
            yield micro

    model = build_model(PRESETS["test"], tokenizer.tokenizer, seed=0)
    settings = finetune.TrainSettings(steps=1000, learning_rate=1e-3, warmup_steps=2, checkpoint_every=1000)
    lines = []
    summary = train_loop.train(model, slowing, settings, tmp_path, log=lines.append, time_limit=120.0,
                             clock=lambda: now[0])
    # fitted to 120 steps after the first 20 (1 s each), then to 53 at step 50 (30 steps of 3 s: 110 s spent)
    assert [line for line in lines if "steps fit" in line] == ["1.00 s per step: 120 steps fit in 120 s",
                                                               "3.00 s per step: 53 steps fit in 120 s"]
    assert summary["steps"] == 53 and summary["finished"]
    assert now[0] == 20 * 1.0 + 33 * 3.0 <= 120.0
