"""Test-time fine-tuning through real vLLM: several adapters in one engine call each reach their own
requests (against transformers + peft as the reference), and `run --ttt task` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import EAGER, ROOT, SAMPLE
from submission.encoders import get_encoder
from submission.engine import EngineSettings, GenerationRequest, ScoreRequest, VllmEngine
from submission.finetune import training_example
from submission.prompts import get_template
from submission.ttt import TARGET_MODULES, TttSettings, save_adapter, train_adapter

pytestmark = pytest.mark.engine

ENCODER, TEMPLATE = "shape-row-numbers", "output-from-examples-v1"
FORCED = {"a": np.array([[1, 2], [3, 4]], dtype=np.uint8), "b": np.array([[7]], dtype=np.uint8)}


@pytest.fixture(scope="module")
def forced(tiny_model_dir, tokenizer, sample_challenges, tmp_path_factory):
    """Two adapters trained hard on one prompt, each towards another answer, and the greedy answers
    that transformers + peft (float32) give for that prompt with each adapter and with none."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    task = sample_challenges.tasks[sorted(sample_challenges.tasks)[0]]
    encoder, template = get_encoder(ENCODER), get_template(TEMPLATE)
    folder = tmp_path_factory.mktemp("adapters")
    settings = TttSettings(mode="task", steps=200, rank=32, alpha=64, learning_rate=1e-2, examples_per_step=1)
    prompts = set()
    for name, answer in FORCED.items():
        example = training_example(tokenizer, template, encoder, task, answer, 8192, loss_on="answer")
        prompts.add(tuple(int(t) for t in example.ids[: example.prompt_tokens]))
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
        model = get_peft_model(base, LoraConfig(r=settings.rank, lora_alpha=settings.alpha,
                                                target_modules=list(TARGET_MODULES), task_type="CAUSAL_LM"))
        train_adapter(model, [example], settings, settings.steps, 0, "cpu")
        save_adapter(model, folder / name, {"name": name})
    [prompt] = prompts  # both answers follow the same prompt
    answer_tokens = 24
    expected = {}
    for name in ("", *FORCED):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
        if name:
            model = PeftModel.from_pretrained(model, str(folder / name))
        out = model.generate(torch.tensor([prompt]), max_new_tokens=answer_tokens, do_sample=False)
        expected[name] = tuple(int(t) for t in out[0, len(prompt):])
    return prompt, answer_tokens, {name: str(folder / name) if name else "" for name in expected}, expected


@pytest.fixture(scope="module")
def lora_engine(tiny_model_dir):
    engine = VllmEngine(EngineSettings(str(tiny_model_dir), dtype="float32", cpu_kv_cache_gib=1, max_lora_rank=32,
                                       enforce_eager=EAGER, lora_adapters=2), log=lambda _: None)
    yield engine
    engine.close()


def test_each_request_is_answered_through_its_own_adapter_in_one_call(lora_engine, forced, tokenizer):
    prompt, max_tokens, paths, expected = forced
    assert len(set(expected.values())) == 3  # the adapters do change the answer, each differently
    order = ["a", "", "b", "a", "b", ""]
    requests = [GenerationRequest(prompt, max_tokens, lora=paths[name]) for name in order]
    outputs = lora_engine.generate(requests)
    for name, completions in zip(order, outputs):
        want = expected[name]
        got = tokenizer.encode(completions[0].text, add_special_tokens=False)
        # vLLM stops at the end of turn; transformers' reference may run past it: compare up to it
        assert tuple(got) == want[: len(got)] and len(got) > 0, (name, completions[0].text)
    # the judge's scores go through the adapter too: its own answer is far more probable under it
    continuation = expected["a"][:6]
    scores = lora_engine.score([ScoreRequest(prompt, continuation, paths["a"]), ScoreRequest(prompt, continuation)])
    assert sum(scores[0]) > sum(scores[1]) + 1.0, scores


def test_a_request_naming_an_adapter_needs_an_engine_with_lora(vllm_engine, forced):
    prompt, max_tokens, paths, _ = forced
    with pytest.raises(ValueError, match="without LoRA"):
        vllm_engine.generate([GenerationRequest(prompt, max_tokens, lora=paths["a"])])


def test_run_with_ttt_trains_an_adapter_per_task_and_predicts_through_them(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "submission", "run", "--challenges", str(SAMPLE / "challenges.json"),
               "--model", str(tiny_model_dir), "--out", str(out), "--max-tokens", "16", "--ttt", "task",
               "--ttt-steps", "4", "--ttt-min-steps", "2", "--ttt-examples-per-step", "2",
               "--encoder", ENCODER, "--template", TEMPLATE, "--enforce-eager"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads((out / "run.json").read_text())
    tasks = json.loads((SAMPLE / "challenges.json").read_text())
    trainable = sorted(t for t, task in tasks.items() if len(task["train"]) >= 2)
    assert record["status"] == "done" and record["settings"]["ttt"]["mode"] == "task"
    assert sorted(record["ttt"]["adapters"]) == trainable
    assert all(a["steps"] == 4 and a["rank"] == 8 for a in record["ttt"]["adapters"].values())
    assert record["engine"]["lora"]["max_lora_rank"] == 8
    assert record["predictions"] == 8 * sum(len(t["test"]) for t in tasks.values())
    assert f"ttt: {len(trainable)} of {len(tasks)} tasks have an adapter" in done.stdout
