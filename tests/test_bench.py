"""What the benchmarks rest on: the bare-vLLM baseline generates what the engine's own path
generates, and the CPU benchmark's instant engine drives the real pipeline to a full result."""

import json

import pytest

from submission.engine import GenerationRequest
from submission.settings import RunSettings
from submission.submit import validate_submission



@pytest.mark.engine
def test_bare_generate_gives_what_generate_gives(vllm_engine, tokenizer):
    ids = tuple(tokenizer.encode("<|im_start|>user\n12\n34<|im_end|>\n", add_special_tokens=False))
    requests = [GenerationRequest(ids, 7), GenerationRequest(ids, 9, n=2, temperature=1.0, seed=3, stop=("```",))]
    bare, ours = vllm_engine.bare_generate(requests), vllm_engine.generate(requests)
    assert [[(c.text, c.token_count, c.finish_reason) for c in cs] for cs in bare] == \
           [[(c.text, c.token_count, c.finish_reason) for c in cs] for cs in ours]
    assert [len(cs) for cs in bare] == [1, 2]
    for b, o in zip(bare[0] + bare[1], ours[0] + ours[1]):
        assert b.cumulative_logprob == pytest.approx(o.cumulative_logprob, abs=1e-3)


def test_cpu_benchmark_pass_predicts_every_view_of_the_sample(sample_challenges, tokenizer, tmp_path):
    from bench.overhead import STAGES, cpu_stages

    result = cpu_stages(sample_challenges, tokenizer.tokenizer, RunSettings.of(augmentations=8, time_budget=None), 8192, tmp_path)
    assert result["predictions"] == result["parsed"] == 10 * 8  # the instant answers are well-formed grids
    assert set(result["cpu"]) == set(result["wall"]) == set(STAGES)
    assert sum(1 for _ in open(tmp_path / "predictions.jsonl")) == 80
    submission = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sample_challenges, submission) == []


def test_a_docs_rewrite_keeps_the_hand_written_part_and_only_that(tmp_path):
    from devkit.bench_tools import HAND_WRITTEN, with_hand_written

    doc = tmp_path / "doc.md"
    doc.write_text(f"# old figures\n\n| 1 |\n\n{HAND_WRITTEN}\n\n## How it works\n\nprose\n")
    assert with_hand_written("# new figures\n\n| 2 |\n", doc) == \
        f"# new figures\n\n| 2 |\n\n{HAND_WRITTEN}\n\n## How it works\n\nprose\n"
    doc.write_text("# old figures\n")  # no hand-written part: the figures alone
    assert with_hand_written("# new\n", doc) == "# new\n"
    assert with_hand_written("# new\n", tmp_path / "absent.md") == "# new\n"
