"""``python -m submission prompt`` (submission/preview.py): the previewed prompt is the one a run sends."""

import subprocess
import sys
from pathlib import Path

import pytest

from submission.augment import plan_augmentations
from submission.cli import main
from submission.encoders import get_encoder
from submission.pipeline import plan_work, prepare_requests
from submission.settings import RunSettings
from submission.preview import RULE, preview_prompt
from submission.prompts import answer_token_budget, get_template, render
from submission.tasks import load_challenges

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo"
DEMO_MODEL = ROOT / "models" / "arc-demo"


def sent_requests(tasks, settings, context, tokenizer):
    """What a run sends: prepare_requests over the whole plan, by (task, test, view)."""
    ready, _ = prepare_requests(tasks, plan_work(tasks, settings), tokenizer, context, settings, log=lambda _: None)
    return {(item.task_id, item.test_index, item.view): request for item, request in ready}


def block(out: str, title: str) -> str:
    """The verbatim block of the output whose marker line starts with ``title``."""
    start = out.index(f"{RULE} {title}")
    start = out.index("\n", start) + 1
    return out[start: out.index(f"\n{RULE} end of {title}", start)]


def run_cli(capsys, *args):
    assert main(["prompt", *map(str, args)]) == 0
    return capsys.readouterr().out


def test_preview_is_what_the_run_sends(tokenizer, sample_challenges):
    """Every test input, views 0, 5 and 9 (a run with 10 views): the same token ids and answer budget."""
    settings = RunSettings.of(augmentations=10)
    sent = sent_requests(sample_challenges.tasks, settings, 8192, tokenizer)
    for task in sample_challenges.tasks.values():
        for test_index in range(len(task.test_inputs)):
            for view in (0, 5, 9):
                preview = preview_prompt(tokenizer, task, test_index, view, RunSettings.of(), 8192)
                request = sent[(task.id, test_index, view)]
                assert preview.token_ids == request.prompt_token_ids, (task.id, test_index, view)
                assert preview.answer_tokens == request.max_tokens
                assert preview.text == tokenizer.decode(list(request.prompt_token_ids))
                assert preview.renders_as_text and preview.examples_dropped == 0


def test_preview_drops_the_examples_the_run_drops(tokenizer, sample_challenges):
    task = sample_challenges.tasks["e133d23d"]  # 5 train examples
    encoder, template = get_encoder("shape-row-numbers"), get_template("output-from-examples-v1")
    budget = answer_token_budget(tokenizer, encoder, task)
    # a context that holds the prompt with 3 of its examples and the answer, not with 4
    context = len(tokenizer.encode(render(tokenizer, template, encoder, task, 0, 3), add_special_tokens=False)) + budget
    preview = preview_prompt(tokenizer, task, 0, 0, RunSettings.of(), context)
    request = sent_requests({task.id: task}, RunSettings.of(), context, tokenizer)[(task.id, 0, 0)]
    assert preview.token_ids == request.prompt_token_ids
    assert (preview.examples_used, preview.examples_dropped, preview.context) == (3, 2, context)
    assert len(preview.token_ids) + preview.answer_tokens == context


def test_preview_on_qwen25_tokenizer_is_what_the_run_sends(qwen_tokenizer):
    tasks = load_challenges(DEMO / "challenges.json").tasks
    settings = RunSettings.of(template="output-from-examples-compact")
    sent = sent_requests({"25ff71a9": tasks["25ff71a9"]}, settings, 12288, qwen_tokenizer)
    for test_index, view in ((0, 0), (1, 6)):
        preview = preview_prompt(qwen_tokenizer, tasks["25ff71a9"], test_index, view, settings, 12288)
        assert preview.token_ids == sent[("25ff71a9", test_index, view)].prompt_token_ids
        assert preview.text == qwen_tokenizer.decode(list(preview.token_ids))
        assert preview.text.startswith("<|im_start|>system\nSolve the ARC task.<|im_end|>")
        assert preview.text.endswith("<|im_start|>assistant\n### Output\n\n```grid")


def test_cli_prints_the_decoded_prompt_and_its_counts(capsys, tokenizer, tiny_model_dir):
    out = run_cli(capsys, "--model", tiny_model_dir, "--challenges", DEMO / "challenges.json", "--task", "25ff71a9",
                  "--test", 1, "--view", 2)
    tasks = load_challenges(DEMO / "challenges.json").tasks
    request = sent_requests(tasks, RunSettings.of(), 8192, tokenizer)[("25ff71a9", 1, 2)]  # the tiny model's limit
    assert block(out, "prompt") == tokenizer.decode(list(request.prompt_token_ids))
    assert out.splitlines()[0] == "task 25ff71a9, test 1, view 2: d2 (rot180)"
    assert (f"tokens: {len(request.prompt_token_ids)} prompt + {request.max_tokens} answer budget = "
            f"{len(request.prompt_token_ids) + request.max_tokens} of the context 8192 (--max-model-len 12288, "
            "the model's limit 8192); train examples: 4 of 4\n") in out
    assert (f"format: encoder shape-row-numbers (from run's default: {tiny_model_dir / 'arc_format.json'} names "
            "none), template output-from-examples-v1 (from run's default") in out
    assert "expected answer" not in out


def test_cli_format_from_the_model_folder_and_expected_answer(capsys):
    out = run_cli(capsys, "--model", DEMO_MODEL, "--challenges", DEMO / "challenges.json", "--task", "6150a2bd",
                  "--solutions", DEMO / "solutions.json")
    fmt = DEMO_MODEL / "arc_format.json"
    assert (f"format: encoder shape-row-numbers (from {fmt}), template output-from-examples-compact "
            f"(from {fmt})") in out
    assert block(out, "prompt").startswith("<|im_start|>system\nSolve the ARC task.<|im_end|>")
    # the solution [[0, 0, 4], [0, 8, 6], [5, 3, 6]] as the model must write it after "```grid"
    assert block(out, "expected answer") == " shape: 3x3\n1 004\n2 086\n3 536\n```"
    assert "expected answer: 33 tokens, within the answer budget of 58; " in out  # one token a character


def test_cli_expected_answer_is_in_the_view(capsys):
    out = run_cli(capsys, "--model", DEMO_MODEL, "--challenges", DEMO / "challenges.json", "--task", "6150a2bd",
                  "--solutions", DEMO / "solutions.json", "--view", 1)
    assert out.splitlines()[0] == "task 6150a2bd, test 0, view 1: d1 (rot90)"
    assert block(out, "expected answer") == " shape: 3x3\n1 466\n2 083\n3 005\n```"  # turned a quarter left


def test_view_k_is_the_kth_view_of_the_plan(tokenizer, sample_challenges):
    task = sample_challenges.tasks["6ea4a07e"]
    plan = plan_augmentations(task, 1, 12, seed=3, permute_background=True, shuffle_order=False)
    settings = RunSettings.of(seed=3, permute_background=True, shuffle_order=False)
    first = preview_prompt(tokenizer, task, 1, 0, settings, 8192)
    for view in (3, 11):
        preview = preview_prompt(tokenizer, task, 1, view, settings, 8192)
        assert preview.augmentation == plan[view] and preview.view == view
        assert preview.token_ids != first.token_ids
    assert plan_augmentations(task, 1, 12)[11] != plan[11]  # the options matter


def test_cli_passes_the_plan_options(capsys, tiny_model_dir, sample_challenges):
    plan = plan_augmentations(sample_challenges.tasks["6ea4a07e"], 0, 10, seed=3, permute_background=True,
                              shuffle_order=False)
    out = run_cli(capsys, "--model", tiny_model_dir, "--challenges", ROOT / "data" / "sample" / "challenges.json",
                  "--task", "6ea4a07e", "--view", 9, "--seed", 3, "--permute-background", "--no-shuffle-order")
    assert out.splitlines()[0] == (f"task 6ea4a07e, test 0, view 9: {plan[9]} ({plan[9].description}); a run sends "
                                   "it only with --augmentations 10 or more (this plan's default: 8)")


@pytest.mark.parametrize("args, message", [
    (["--task", "35ff71a9"], "error: no task '35ff71a9' in {challenges} (17 tasks); close ids: 25ff71a9"),
    (["--task", "25ff71a9", "--test", "2"], "error: --test 2 is out of range: task 25ff71a9 has 2 test input(s), 0-1"),
    (["--task", "25ff71a9", "--view", "-1"], "error: --view -1 is out of range: views are numbered from 0"),
    (["--task", "25ff71a9", "--model", "{missing}"], "error: model folder {missing}: not found"),
    (["--task", "25ff71a9", "--model", "{empty}"], "error: model folder {empty}: no usable tokenizer ("),
])
def test_bad_input_is_one_error_line(tmp_path, args, message):
    names = {"challenges": DEMO / "challenges.json", "missing": tmp_path / "no-model", "empty": tmp_path}
    args = [a.format(**names) for a in args]
    model = [] if "--model" in args else ["--model", str(DEMO_MODEL)]
    with pytest.raises(SystemExit) as exit_info:
        main(["prompt", "--challenges", str(DEMO / "challenges.json"), *model, *args])
    assert str(exit_info.value.code).startswith(message.format(**names))
    assert "\n" not in str(exit_info.value.code)


def test_unanswerable_is_one_error_line(tiny_model_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(["prompt", "--model", str(tiny_model_dir), "--challenges", str(DEMO / "challenges.json"),
              "--task", "25ff71a9", "--max-model-len", "100"])
    assert str(exit_info.value.code).startswith("error: view 0 of the plan: task 25ff71a9: test[0] view d0: "
                                                "unanswerable: even one train example needs more than")
    assert str(exit_info.value.code).endswith("; raise --max-model-len")


def test_no_engine_and_no_vllm(tiny_model_dir):
    code = ("import sys; from submission.cli import main; "
            f"assert main(['prompt', '--model', {str(tiny_model_dir)!r}, '--challenges', "
            f"{str(DEMO / 'challenges.json')!r}, '--task', '25ff71a9']) == 0; "
            "print('vllm imported:', 'vllm' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith("vllm imported: False")
