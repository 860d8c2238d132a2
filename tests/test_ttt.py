"""Test-time fine-tuning without vLLM: leave-one-out data, the training-time plan, adapters saved,
reused on resume, and that an adapter lowers its task's loss (tests/test_ttt_engine.py serves them)."""

import json

import numpy as np
import pytest

from submission.encoders import get_encoder
from devkit.train_loop import eval_batches, evaluate_batches
from submission.prompts import get_template
from submission.tasks import Example, Task
from submission.settings import PromptFormat, TttSettings
from submission.ttt import (SHARED, Adapter, AdapterJob, adapter_for_task, leave_one_out, plan_steps, read_adapters,
                            train_adapters, train_in_child, ttt_examples)

ENCODER, TEMPLATE = "shape-row-numbers", "output-from-examples-v1"
FORMAT = PromptFormat(ENCODER, TEMPLATE, 8192)


def grid(rows):
    return np.asarray(rows, dtype=np.uint8)


def flip_task(task_id: str, pairs: int = 3) -> Task:
    """A task whose answer is the input mirrored left-right."""
    rng = np.random.default_rng(len(task_id))
    train = []
    for _ in range(pairs):
        g = rng.integers(0, 4, size=(2, 3)).astype(np.uint8)
        train.append(Example(g, g[:, ::-1].copy()))
    test = rng.integers(0, 4, size=(2, 3)).astype(np.uint8)
    return Task(task_id, tuple(train), (test,))


def test_leave_one_out_holds_out_each_pair_in_turn():
    a, b, c = (Example(grid([[i]]), grid([[i + 5]])) for i in range(3))
    task = Task("t", (a, b, c), (grid([[9]]),))
    made = leave_one_out(task)
    assert [loo.id for loo, _ in made] == ["t/loo0", "t/loo1", "t/loo2"]
    assert [[int(ex.input[0, 0]) for ex in loo.train] for loo, _ in made] == [[1, 2], [0, 2], [0, 1]]
    assert [int(loo.test_inputs[0][0, 0]) for loo, _ in made] == [0, 1, 2]
    assert [int(answer[0, 0]) for _, answer in made] == [5, 6, 7]
    assert leave_one_out(Task("one", (a,), (grid([[9]]),))) == []


def test_ttt_examples_are_the_pipelines_prompts_of_the_held_out_pairs_in_random_views(tokenizer):
    from submission.finetune import random_augmentation
    from submission.pipeline import prepare_requests
    from submission.settings import RunSettings
    from submission.rounds import WorkItem

    task = flip_task("f", pairs=3)
    encoder = get_encoder(ENCODER)
    examples = ttt_examples(tokenizer, get_template(TEMPLATE), encoder, [task], 6, np.random.default_rng(0), 8192)
    assert len(examples) == 6
    rng = np.random.default_rng(0)  # the same draws: the held-out pairs in turn, one random view each
    settings = RunSettings.of(encoder=ENCODER, template=TEMPLATE)
    for i, example in enumerate(examples):
        loo, answer = leave_one_out(task)[i % 3]
        view = random_augmentation(rng, len(loo.train))
        # the prompt is what a run sends for that view of the leave-one-out task ...
        [(_, request)], _ = prepare_requests({loo.id: loo}, [WorkItem(loo.id, 0, view, 0)], tokenizer, 8192, settings,
                                             log=lambda _: None)
        assert tuple(example.ids[: example.prompt_tokens]) == request.prompt_token_ids
        # ... and the answer is the held-out output in that view, as the model must write it
        written = tokenizer.decode(example.ids[example.prompt_tokens:].tolist())
        assert written.startswith(encoder.encode(view.apply_grid(answer))[len(encoder.answer_start):]), written
        assert (example.labels[example.prompt_tokens:] == example.ids[example.prompt_tokens:]).all()


def test_plan_steps_fits_every_adapter_or_drops_the_ones_that_do_not_fit():
    s = TttSettings(mode="task", steps=32, min_steps=8)
    assert plan_steps(s, None, 10, 100.0) == 32  # nothing measured yet
    assert plan_steps(s, 1.0, 2, 100.0) == 32  # 64 s of 100: all fit at full length
    assert plan_steps(s, 1.0, 5, 100.0) == 20  # 100 s / 5 adapters
    assert plan_steps(s, 1.0, 20, 100.0) == 8  # 5 s each is too few: the next still gets min_steps
    assert plan_steps(s, 1.0, 20, 7.0) == 0  # not even min_steps fits
    assert plan_steps(s, 1.0, 3, 0.0) == 0
    assert plan_steps(s, 1.0, 3, float("inf")) == 32


def test_settings_refuse_what_cannot_train():
    with pytest.raises(ValueError, match="mode"):
        TttSettings(mode="per-task")
    with pytest.raises(ValueError, match="share"):
        TttSettings(mode="task", share=1.0)
    with pytest.raises(ValueError, match="min steps"):
        TttSettings(mode="task", steps=4, min_steps=8)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def slow_trainer(clock, seconds_per_step, calls):
    """A trainer double: every step costs ``seconds_per_step`` on the fake clock."""

    def train(model, examples, settings, steps, pad_id, device, deadline, seed):
        calls.append(steps)
        done = 0
        while done < steps and (deadline is None or clock() + seconds_per_step <= deadline):
            clock.now += seconds_per_step
            done += 1
        return done, [1.0 - 0.01 * i for i in range(done)]

    return train


def test_the_training_time_is_split_by_the_measured_speed(tiny_model_dir, tmp_path):
    tasks = [flip_task(f"task{i}") for i in range(5)]
    clock, calls = FakeClock(), []
    settings = TttSettings(mode="task", steps=10, min_steps=4, examples_per_step=1)
    # 2 s per step, 45 s in all: task0 gets 10 steps (20 s), then 25 s for 4 tasks -> 3 steps each
    # is below min_steps, so task1 and task2 get 4 each (8 s each), and 9 s are left: task3 gets 4,
    # task4's 4 steps (8 s) do not fit in the last 1 s.
    lines = []
    job = AdapterJob(str(tiny_model_dir), settings, FORMAT, tmp_path / "adapters", deadline=clock() + 45)
    adapters = train_adapters(job, tasks, log=lines.append, trainer=slow_trainer(clock, 2.0, calls), clock=clock)
    assert calls == [10, 4, 4, 4]
    assert sorted(adapters) == ["task0", "task1", "task2", "task3"]
    assert [adapters[t].steps for t in ("task0", "task1", "task2", "task3")] == [10, 4, 4, 4]
    assert clock() <= 1000 + 45
    assert any("1 adapter(s) not trained" in line for line in lines), lines
    assert adapter_for_task(adapters, "task4") == ""
    assert adapter_for_task(adapters, "task1") == str(tmp_path / "adapters" / "task1")


def test_a_run_stopped_during_training_resumes_with_the_adapters_it_saved(tiny_model_dir, tmp_path):
    tasks = [flip_task(f"task{i}") for i in range(3)]
    job = AdapterJob(str(tiny_model_dir), TttSettings(mode="task", steps=4, min_steps=2, examples_per_step=1), FORMAT,
                     tmp_path / "adapters")
    clock, calls = FakeClock(), []
    trainer = slow_trainer(clock, 1.0, calls)

    def killed_on_the_third(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the kill arrives during the third adapter
        return trainer(*args)

    with pytest.raises(KeyboardInterrupt):
        train_adapters(job, tasks, log=lambda _: None, trainer=killed_on_the_third, clock=clock)
    assert sorted(read_adapters(tmp_path / "adapters")) == ["task0", "task1"]
    assert not (tmp_path / "adapters" / "task2").exists()
    calls.clear()
    lines = []
    adapters = train_adapters(job, tasks, log=lines.append, trainer=trainer, clock=clock)
    assert calls == [4]  # only task2 is trained again
    assert sorted(adapters) == ["task0", "task1", "task2"]
    assert any("2 adapter(s) already in" in line for line in lines)


def test_a_folder_without_its_record_is_not_an_adapter(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "adapter_config.json").write_text("{}")
    assert Adapter.read(tmp_path / "half") is None
    assert read_adapters(tmp_path) == {}


def test_an_adapter_lowers_its_tasks_loss_and_is_saved_whole(tiny_model_dir, tokenizer, tmp_path):
    import torch
    from peft import PeftModel
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    task = flip_task("flip", pairs=4)
    settings = TttSettings(mode="task", steps=24, min_steps=4, examples_per_step=4, learning_rate=3e-3, rank=8)
    adapters = train_adapters(AdapterJob(str(tiny_model_dir), settings, FORMAT, tmp_path / "adapters"), [task],
                              log=lambda _: None)
    saved = adapters["flip"]
    assert saved.steps == 24 and saved.rank == 8
    with safe_open(f"{saved.path}/adapter_model.safetensors", "pt") as f:
        assert len(list(f.keys())) == 2 * 7 * 2  # lora_A and lora_B of 7 projections in 2 layers
    # the loss on fresh views of the task's own leave-one-out examples, base model vs with the adapter
    examples = ttt_examples(tokenizer, get_template(TEMPLATE), get_encoder(ENCODER), [task], 16,
                            np.random.default_rng(99), 8192)
    batches = eval_batches(examples, tokenizer.pad_token_id or 0, 8192)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    before = evaluate_batches(base, batches, torch.device("cpu"), bf16=False)["loss"]
    tuned = PeftModel.from_pretrained(base, saved.path)
    after = evaluate_batches(tuned, batches, torch.device("cpu"), bf16=False)["loss"]
    assert after < 0.9 * before, (before, after)
    assert json.loads((tmp_path / "adapters" / "flip" / "ttt.json").read_text())["steps"] == 24


def test_shared_mode_trains_one_adapter_for_every_task(tiny_model_dir, tmp_path):
    tasks = [flip_task(f"task{i}") for i in range(3)]
    calls = []
    clock = FakeClock()
    job = AdapterJob(str(tiny_model_dir), TttSettings(mode="shared", steps=6, min_steps=2), FORMAT, tmp_path)
    adapters = train_adapters(job, tasks, log=lambda _: None, trainer=slow_trainer(clock, 1.0, calls), clock=clock)
    assert list(adapters) == [SHARED] and calls == [6]
    assert {adapter_for_task(adapters, t.id) for t in tasks} == {str(tmp_path / SHARED)}


def test_on_several_gpus_each_training_process_takes_its_share_of_the_tasks(tiny_model_dir, tmp_path, capfd):
    # Two "GPUs" on a machine without CUDA: each spawned process is pinned to its device number and trains
    # its share (on the CPU here), and the adapters of both land in the one folder the engine reads.
    tasks = [flip_task(f"task{i}") for i in range(3)]
    settings = TttSettings(mode="task", steps=2, min_steps=1, examples_per_step=1)
    lines = []
    adapters = train_in_child(AdapterJob(str(tiny_model_dir), settings, FORMAT, tmp_path / "adapters"), tasks,
                              log=lines.append, gpus=2)
    out = capfd.readouterr().out
    assert sorted(adapters) == ["task0", "task1", "task2"] and lines == []
    assert {a.steps for a in adapters.values()} == {2}
    assert "[ttt 0] GPU 0: 2 task(s) to train" in out and "[ttt 1] GPU 1: 1 task(s) to train" in out, out


def test_each_tasks_prompts_name_its_adapter(sample_challenges, tokenizer):
    from submission.pipeline import plan_work, prepare_requests
    from submission.settings import RunSettings

    settings = RunSettings.of(encoder=ENCODER, template=TEMPLATE)
    items = plan_work(sample_challenges.tasks, settings)
    first = sorted(sample_challenges.tasks)[0]
    ready, _ = prepare_requests(sample_challenges.tasks, items, tokenizer, 8192, settings, log=lambda _: None,
                                adapters={first: "/adapters/" + first})
    assert len(ready) == len(items)
    assert all(request.lora == ("/adapters/" + first if item.task_id == first else "") for item, request in ready)
    assert sum(request.lora != "" for _, request in ready) == 8 * len(sample_challenges.tasks[first].test_inputs)
