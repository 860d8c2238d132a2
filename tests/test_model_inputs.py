"""A model folder that cannot serve the run is named in one line before the engine starts: a
tokenizer that cannot write the format's answers, one larger than the model's embedding, and test
inputs whose shortest prompt leaves no room for the answer."""

import json
import shutil
import subprocess
import sys

from conftest import ROOT, SAMPLE
from submission.encoders import get_encoder
from submission.prompts import get_template, tokenizer_problems, unfittable_test_inputs


class WithoutNewline:
    """A tokenizer that loses newlines (as one without a newline token would): the rest round-trips."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __len__(self):
        return len(self.tokenizer)

    def encode(self, text, add_special_tokens=False):
        return self.tokenizer.encode(text.replace("\n", ""), add_special_tokens=add_special_tokens)

    def decode(self, ids):
        return self.tokenizer.decode(ids)


def test_qwen2_5_s_and_the_byte_tokenizers_can_write_every_format(qwen_tokenizer, tokenizer):
    for name in ("shape-row-numbers", "minimal", "code-block-row-numbers"):
        assert tokenizer_problems(qwen_tokenizer, get_encoder(name), 151_936) == []
        assert tokenizer_problems(tokenizer, get_encoder(name), 320) == []


def test_a_tokenizer_that_cannot_write_a_newline_or_is_larger_than_the_embedding_is_named(qwen_tokenizer):
    encoder = get_encoder("shape-row-numbers")
    assert tokenizer_problems(WithoutNewline(qwen_tokenizer), encoder, None) == [
        "the tokenizer cannot write the shape-row-numbers format's answers: '\\n' do(es) not come back from encode "
        "and decode"]
    assert tokenizer_problems(qwen_tokenizer, encoder, 32_000) == [
        "the tokenizer has 151,665 tokens, the model's embedding 32,000 rows: a tokenizer of another model? "
        "(ids past the embedding)"]


def test_test_inputs_no_prompt_fits_are_named(tokenizer, sample_challenges):
    encoder, template = get_encoder("shape-row-numbers"), get_template("output-from-examples-v1")
    assert unfittable_test_inputs(tokenizer, template, encoder, sample_challenges.tasks, 8192) == []
    lines = unfittable_test_inputs(tokenizer, template, encoder, sample_challenges.tasks, 900)
    assert 0 < len(lines) < 10 and all("it will be unanswerable; raise --max-model-len" in line for line in lines)
    assert lines[0].startswith("task ") and "its shortest prompt (one example) is " in lines[0]


def test_run_stops_before_the_engine_on_a_tokenizer_larger_than_the_embedding(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "vocab_size": 128}))
    done = subprocess.run([sys.executable, "-m", "submission", "run", "--challenges", str(SAMPLE / "challenges.json"),
                           "--model", str(model), "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: model folder {model}: the tokenizer has 259 tokens, the model's embedding 128 rows: a tokenizer of "
        f"another model? (ids past the embedding); {tmp_path / 'out' / 'submission.json'} keeps the fallback attempts")
    assert "engine:" not in done.stdout  # no engine was started
    assert (tmp_path / "out" / "submission.json").is_file()
