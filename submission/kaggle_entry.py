"""The Kaggle kernel's start-up: never end without a valid submission.json, then do the real job.

Kaggle runs a submitted notebook twice (ARC Prize 2026): the **commit run** (saving a version),
where the test file is a small public placeholder, and the **scoring rerun** on the hidden tasks,
with ``KAGGLE_IS_COMPETITION_RERUN`` set. The mode is the first line of the log.

Order, each step logged in one line:
 1. find the competition's test challenges (its own mount first, a search last) and write a fallback
    submission.json at once, so nothing later can leave the run without one;
 2. if vllm, numpy or orjson do not import, or vllm is not the version the kernel was built for,
    install the vendored wheels (``pip install --no-index --require-hashes``) from the wheels
    dataset, after checking its lock against the kernel's and every wheel's sha256;
 3. find the model folder (built in, or one with arc_format.json, or a Kaggle Models mount; a tie is
    named, never guessed), log the GPUs;
 4. run ``python -m submission run`` in a child process under the time budget (the commit run's
    short one, or the full one); a crash, a model that does not load or a hard time-out there
    leaves the fallback in place;
 5. copy the run's submission.json over the fallback only if it validates against the challenges;
 6. commit run: print the measured speed and the projection for the hidden test set, and FAIL
    (exit 2; in a notebook, an exception) when the run could not have scored: no challenges, no
    engine, or no prediction that parsed to a grid. The scoring rerun never fails while a valid
    submission.json exists.

This module is imported before anything is installed: it uses the standard library only (the
package's own modules need numpy and orjson). The same file runs locally: every path comes from an
option or an environment variable, with Kaggle's folders as defaults.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_INPUT_DIR = "/kaggle/input"
DEFAULT_WORKING_DIR = "/kaggle/working"
DEFAULT_TIME_BUDGET = 11 * 3600  # seconds for the whole kernel; Kaggle stops GPU runs at 12 h
DEFAULT_COMMIT_BUDGET = 20 * 60  # the commit run's: install, engine start-up and the placeholder tasks
DEFAULT_COMPETITION = "arc-prize-2026-arc-agi-2"
RERUN_VARIABLE = "KAGGLE_IS_COMPETITION_RERUN"
HIDDEN_TASKS = 240  # about as many hidden tasks as the 2026 scoring rerun has
REQUIRED_MODULES = ("vllm", "numpy", "orjson")
LOCK_NAME = "wheels.lock.json"  # build_bundle.py copies the lock into the wheels dataset
RUN_FOLDER = "run"  # under the working dir: the run's predictions.jsonl, run.json, submission.json
SEARCH_DEPTH = 6  # Kaggle Models mount as <input>/<model>/<framework>/<variation>/<version>/
# Kaggle Models' frameworks: the third-from-last part of a mount <model>/<framework>/<variation>/<version>
MODEL_FRAMEWORKS = frozenset({"transformers", "pytorch", "other", "keras", "tensorflow1", "tensorflow2", "jax",
                              "flax", "gguf", "onnx", "tfjs", "tflite", "tensorrtllm", "triton", "coral", "mxnet"})
SOFT_MARGIN = 90  # seconds: the run is told to finish this long before the hard stop
HARD_MARGIN = 20  # seconds kept after the hard stop to validate and copy the result
MAX_SIDE = 30
FALLBACK_GRID = [[0]]

_started = time.monotonic()


def log(message: str) -> None:
    print(f"[kernel {time.monotonic() - _started:7.1f}s] {message}", flush=True)


@dataclass(frozen=True)
class Outcome:
    """How the kernel ended: 0 = a valid submission.json and nothing to stop; 1 = none could be
    written; 2 = the commit run found a cause that would score 0 (the fallback is in place)."""
    code: int
    reason: str = ""


def kernel_mode(environ) -> str:
    """'rerun' when Kaggle scores the notebook on the hidden tasks, else 'commit'."""
    value = environ.get(RERUN_VARIABLE, "").strip().lower()
    return "rerun" if value not in ("", "0", "false", "no") else "commit"


# ---------------------------------------------------------------- finding the inputs


def walk(root: Path, max_depth: int = SEARCH_DEPTH):
    """(folder, file names, subfolder names) under root, sorted, hidden folders skipped, depth-limited."""
    root = Path(root)
    if not root.is_dir():
        return
    base_depth = len(root.parts)
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        folder_path = Path(folder)
        depth = len(folder_path.parts) - base_depth
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if depth < max_depth else []
        yield folder_path, sorted(filenames), dirnames


def competition_year(path: Path) -> int:
    """The year of the ARC Prize competition folder a path lies in (arc-prize-2025 -> 2025), else 0."""
    years = [int(m.group(1)) for part in path.parts for m in [re.search(r"arc-prize-(\d{4})", part)] if m]
    return max(years, default=0)


def is_challenges_file(name: str) -> bool:
    return name.endswith("test_challenges.json")


def find_challenges(input_dir: Path, competition: str = DEFAULT_COMPETITION) -> list[Path]:
    """Every ``*test_challenges.json`` under the input root, the one to use first: the competition's
    own mount (``competitions/<slug>/``, then 2024-2025's ``<slug>/``), then a search in which any
    competition mount comes before a dataset and the newest ARC Prize year first. A dataset that
    holds its own test challenges file never wins over the competition's."""
    input_dir = Path(input_dir)
    own = [folder / name for folder in (input_dir / "competitions" / competition, input_dir / competition)
           if folder.is_dir() for name in sorted(os.listdir(folder)) if is_challenges_file(name)]
    found = [folder / name for folder, names, _ in walk(input_dir) for name in names
             if is_challenges_file(name) and folder / name not in own]

    def rank(path: Path):
        under_competitions = path.relative_to(input_dir).parts[0] == "competitions"
        return (not under_competitions, -competition_year(path), len(path.parts), str(path))

    return own + sorted(found, key=rank)


def find_wheels_dir(input_dir: Path) -> Path | None:
    """The folder of vendored wheels: one with a lock file first, then one holding a vllm wheel."""
    candidates = []
    for folder, names, _ in walk(input_dir, max_depth=4):
        wheels = [n for n in names if n.endswith(".whl")]
        if wheels:
            has_vllm = any(n.lower().startswith("vllm-") for n in wheels)
            candidates.append((LOCK_NAME not in names, not has_vllm, len(folder.parts), str(folder), folder))
    return min(candidates)[-1] if candidates else None


def is_model_dir(folder: Path, names: list[str]) -> bool:
    if "config.json" not in names:
        return False
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return True  # a broken model folder is still the model folder; loading it will say what is wrong
    return isinstance(config, dict) and ("model_type" in config or "architectures" in config)


def is_kaggle_models_mount(folder: Path) -> bool:
    """<model>/<framework>/<variation>/<version>/, as Kaggle mounts an attached Kaggle Model."""
    return folder.name.isdigit() and len(folder.parts) >= 4 and folder.parent.parent.name.lower() in MODEL_FRAMEWORKS


def model_rank(folder: Path, names: list[str]) -> tuple[bool, bool, bool, bool]:
    """Lower is better: arc_format.json (the model says its prompt format), a Kaggle Models mount,
    weights, a tokenizer. Two folders of the same rank are a tie that only the user can settle."""
    return ("arc_format.json" not in names, not is_kaggle_models_mount(folder),
            not any(n.endswith((".safetensors", ".bin")) for n in names),
            not ("tokenizer.json" in names or "tokenizer_config.json" in names))


def model_candidates(input_dir: Path) -> list[tuple[tuple, Path]]:
    """(rank, folder) of every folder with a model's config.json, best first."""
    found = [(model_rank(folder, names), folder) for folder, names, _ in walk(input_dir) if is_model_dir(folder, names)]
    return sorted(found, key=lambda entry: (entry[0], len(entry[1].parts), str(entry[1])))


def find_model_dirs(input_dir: Path) -> list[Path]:
    """Folders with a model's config.json, best first (see model_rank)."""
    return [folder for _, folder in model_candidates(input_dir)]


CHOOSE_MODEL = "choose one with build_bundle.py --model-path PATH (or --model / ARC_MODEL_DIR)"


def choose_model(input_dir: Path, built_in: str | None = None) -> tuple[Path | None, str]:
    """(the model folder, a line saying why) or (None, the cause). ``built_in`` is the path that
    build_bundle.py --model-path wrote into the kernel: relative to the input root, or absolute
    under /kaggle/input (re-rooted under ``input_dir`` for a local rehearsal)."""
    if built_in:
        path = Path(built_in)
        if path.is_absolute() and path.is_relative_to(DEFAULT_INPUT_DIR):
            path = Path(input_dir) / path.relative_to(DEFAULT_INPUT_DIR)
        elif not path.is_absolute():
            path = Path(input_dir) / path
        if not (path / "config.json").is_file():
            return None, (f"the model path built into the kernel, {built_in}, holds no config.json under "
                          f"{input_dir}: attach that model, or rebuild with another --model-path")
        return path, f"built into the kernel (--model-path {built_in})"
    candidates = model_candidates(input_dir)
    if not candidates:
        return None, f"no model folder (config.json) under {input_dir}: attach the model; {CHOOSE_MODEL}"
    best_rank = candidates[0][0]
    tied = [folder for rank, folder in candidates if rank == best_rank]
    if len(tied) > 1:
        return None, (f"{len(tied)} model folders tie ({', '.join(map(str, tied[:4]))}); none is picked "
                      f"arbitrarily: {CHOOSE_MODEL}")
    why = ("it has arc_format.json" if not best_rank[0] else "a Kaggle Models mount" if not best_rank[1]
           else "the best of the folders with a config.json")
    others = [str(folder) for _, folder in candidates[1:4]]
    return candidates[0][1], why + (f"; also found: {', '.join(others)}" if others else "")


# ---------------------------------------------------------------- submission.json with the stdlib only


def is_grid(value: object) -> bool:
    """Same rule as tasks.to_grid: a non-empty rectangle of plain ints 0-9, at most 30x30."""
    if not isinstance(value, list) or not value or len(value) > MAX_SIDE:
        return False
    width = len(value[0]) if isinstance(value[0], list) else 0
    if not 0 < width <= MAX_SIDE:
        return False
    return all(isinstance(row, list) and len(row) == width and
               all(type(cell) is int and 0 <= cell <= 9 for cell in row) for row in value)


def test_inputs(raw_task: object) -> list[object]:
    """The test inputs of a task as JSON values; a task without a usable test list counts one."""
    tests = raw_task.get("test") if isinstance(raw_task, dict) else None
    if not isinstance(tests, list) or not tests:
        return [None]
    return [t.get("input") if isinstance(t, dict) else None for t in tests]


def fallback_submission(raw_challenges: dict) -> dict:
    """What submit.fallback_submission gives, without numpy: the test input, then [[0]] (or [[1]])."""
    submission = {}
    for task_id, raw_task in raw_challenges.items():
        entries = []
        for grid in test_inputs(raw_task):
            first = grid if is_grid(grid) else FALLBACK_GRID
            entries.append({"attempt_1": first, "attempt_2": FALLBACK_GRID if first != FALLBACK_GRID else [[1]]})
        submission[task_id] = entries
    return submission


def submission_problems(raw_challenges: dict, submission: object) -> list[str]:
    """One line per problem (the rules of submit.validate_submission); empty means valid."""
    if not isinstance(submission, dict):
        return [f"submission: expected an object of tasks, got {type(submission).__name__}"]
    problems = []
    for task_id, raw_task in raw_challenges.items():
        count = len(test_inputs(raw_task))
        entries = submission.get(task_id)
        if not isinstance(entries, list) or len(entries) != count:
            problems.append(f"task {task_id}: expected a list of {count} test entries")
            continue
        for i, entry in enumerate(entries):
            for key in ("attempt_1", "attempt_2"):
                if not isinstance(entry, dict) or not is_grid(entry.get(key)):
                    problems.append(f"task {task_id}: test[{i}].{key}: missing or not a grid")
    problems += [f"task {task_id}: not in the challenges file"
                 for task_id in submission if task_id not in raw_challenges]
    return problems


def write_json_atomic(path: Path, data: object) -> None:
    """Temporary file beside it, then rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600: readable by its owner only (as submit.write_bytes_atomic)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> object:
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------- offline install


_VERSION_PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "unknown"))
    except Exception:
        pass
"""


def module_versions(python: str, modules=REQUIRED_MODULES) -> dict[str, str | None]:
    """Each module's version, None where it does not import; probed in a fresh interpreter (a failed
    import would taint this one)."""
    probe = subprocess.run([python, "-c", _VERSION_PROBE, *modules], capture_output=True, text=True)
    if probe.returncode != 0:  # the probe itself died (e.g. a crashing extension): trust none of them
        return dict.fromkeys(modules)
    found = dict(line.split(" ", 1) for line in probe.stdout.splitlines() if " " in line)
    return {name: found.get(name) for name in modules}


def missing_modules(python: str, modules=REQUIRED_MODULES) -> list[str]:
    return [name for name, version in module_versions(python, modules).items() if version is None]


def lock_targets(lock: dict) -> list[dict]:
    """The lock's per-Python parts, each {"target": ..., "wheels": [...]}: a lock of several Pythons
    lists them under "locks"; an older lock of one Python has its target and wheels at the top."""
    return list(lock["locks"]) if "locks" in lock else [{"target": lock["target"], "wheels": lock["wheels"]}]


def lock_for_python(lock: dict, version: str) -> dict | None:
    return next((part for part in lock_targets(lock) if part["target"]["python_version"] == version), None)


def lock_digest(lock: dict) -> str:
    """sha256 of the lock's content (key order and layout do not count): the kernel carries its
    build's, and refuses a wheels dataset whose lock is another."""
    return hashlib.sha256(json.dumps(lock, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def lock_summary(lock: dict) -> dict:
    """What the kernel carries of its build's lock: the digest, the requirements, vllm's version."""
    requirements = list(lock.get("requirements") or [])
    vllm = next((r.split("==", 1)[1] for r in requirements if r.startswith("vllm==")), None)
    return {"digest": lock_digest(lock), "requirements": requirements, "vllm": vllm}


def describe_lock(summary: dict) -> str:
    what = f"vllm {summary['vllm']}" if summary.get("vllm") else " ".join(summary.get("requirements") or []) or "?"
    return f"{what}, lock {summary.get('digest', '?')[:12]}"


def interpreter_version(python: str) -> str:
    if python == sys.executable:
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    probe = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True)
    return probe.stdout.strip() or "unknown"


def wrong_python(wheels_dir: Path, python: str) -> str | None:
    """Why the wheels cannot install into ``python``, said before pip tries: the lock has no part for
    the interpreter's Python (compiled wheels are built for one Python). None when one fits."""
    try:
        targets = [part["target"]["python_version"] for part in lock_targets(read_json(wheels_dir / LOCK_NAME))]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no lock to tell: pip will say
    found = interpreter_version(python)
    if found in targets:
        return None
    return (f"the wheels in {wheels_dir} are for Python {' and '.join(targets)}, this image runs Python {found}: "
            f"rebuild them with `python build_bundle.py --python-version {' '.join(targets + [found])}` and upload "
            "them as a new version of the wheels dataset")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheel_problem(wheels_dir: Path, wheels: list[dict]) -> str | None:
    """The first locked wheel that is missing or whose sha256 is not the lock's, in one line; None if all match."""
    for wheel in wheels:
        path = wheels_dir / wheel["filename"]
        if not path.is_file():
            return f"wheel {wheel['filename']} of the lock is not in {wheels_dir}"
        actual = sha256_of(path)
        if actual != wheel["sha256"]:
            return (f"wheel {path} has sha256 {actual}, the lock says {wheel['sha256']}: the wheels dataset is "
                    "corrupt or was changed; upload wheels/ again (kaggle datasets version -p wheels)")
    return None


def hashed_requirements(wheels: list[dict]) -> str:
    """A requirements file for ``pip install --require-hashes``: every locked wheel pinned, with its sha256."""
    return "".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in wheels)


def install_wheels(wheels_dir: Path, python: str = sys.executable, built_lock: dict | None = None,
                   scratch: Path | None = None) -> str | None:
    """Install the lock's part for ``python`` from ``wheels_dir``, hash-checked; None when done, else
    the cause in one line (nothing is installed then). ``built_lock`` is the kernel's lock summary:
    a wheels dataset with another lock is refused."""
    lock_path = wheels_dir / LOCK_NAME
    if not lock_path.is_file():
        if built_lock:
            return (f"{wheels_dir} has no {LOCK_NAME}; this kernel was built with {describe_lock(built_lock)}: upload "
                    "the wheels folder that build_bundle.py wrote")
        return install_unchecked(wheels_dir, python)
    try:
        lock = read_json(lock_path)
        dataset = lock_summary(lock)
    except (OSError, ValueError, AttributeError) as exc:
        return f"{lock_path} is unreadable ({exc})"
    if built_lock and built_lock.get("digest") != dataset["digest"]:
        return (f"the wheels dataset {wheels_dir} holds {describe_lock(dataset)}, this kernel was built with "
                f"{describe_lock(built_lock)}: upload the wheels of this build (kaggle datasets version -p wheels) "
                "or rebuild the kernel against that lock (build_bundle.py --lock)")
    mismatch = wrong_python(wheels_dir, python)
    if mismatch:
        return mismatch
    try:
        part = lock_for_python(lock, interpreter_version(python))
        wheels = list(part["wheels"])
    except (KeyError, TypeError) as exc:
        return f"{lock_path} has no usable part for this Python ({exc})"
    started = time.monotonic()
    problem = wheel_problem(wheels_dir, wheels)
    if problem:
        return problem
    log(f"install: {len(wheels)} wheels match the lock's sha256 ({time.monotonic() - started:.0f}s to check)")
    scratch = scratch or Path(tempfile.mkdtemp(prefix="arc_install_"))
    scratch.mkdir(parents=True, exist_ok=True)
    requirements = scratch / "requirements.txt"
    requirements.write_text(hashed_requirements(wheels))
    return run_pip(python, wheels_dir, ["--require-hashes", "-r", str(requirements)], len(wheels))


def install_unchecked(wheels_dir: Path, python: str) -> str | None:
    """A folder of wheels without a lock (a hand-made dataset): every file, with nothing to check it against."""
    files = [str(p) for p in sorted(wheels_dir.glob("*.whl"))]
    if not files:
        return f"no wheels in {wheels_dir}"
    log(f"install: {wheels_dir} has no {LOCK_NAME}: installing its {len(files)} wheels unchecked")
    return run_pip(python, wheels_dir, files, len(files))


def run_pip(python: str, wheels_dir: Path, what: list[str], count: int) -> str | None:
    log(f"install: {count} packages from {wheels_dir} (pip --no-index)")
    started = time.monotonic()
    result = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels_dir), "--quiet",
         "--disable-pip-version-check", "--no-warn-script-location", *what],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stderr or result.stdout)  # pip colours its errors
        tail = [line.strip() for line in plain.strip().splitlines()[-3:]]
        return f"pip failed (exit {result.returncode}): {' | '.join(tail)}"
    log(f"install: done in {time.monotonic() - started:.0f}s")
    return None


def ensure_packages(args, python: str, built_lock: dict | None) -> str | None:
    """vllm, numpy and orjson importable, vllm at the version the kernel was built for; None when so,
    else the cause. An importable vllm of another version is named, then replaced by the locked one
    (or, with --no-install, used as it is, said so)."""
    versions = module_versions(python)
    locked = (built_lock or {}).get("vllm")
    found = versions.get("vllm")
    other_vllm = bool(locked and found and found.split("+")[0] != locked)
    if other_vllm:
        log(f"packages: vllm {found} is importable, but this kernel was built for vllm {locked}: "
            + ("--no-install (ARC_NO_INSTALL) is set, so vllm " + found + " runs as it is" if args.no_install
               else "installing the locked one"))
    missing = [name for name, version in versions.items() if version is None]
    if (missing or other_vllm) and not args.no_install:
        wheels_dir = args.wheels_dir or find_wheels_dir(args.input_dir)
        if wheels_dir is None:
            return (f"{', '.join(missing) or 'vllm ' + str(locked)} needed and no folder of .whl files under "
                    f"{args.input_dir}: attach the wheels dataset")
        cause = install_wheels(Path(wheels_dir), python, built_lock, args.scratch_dir)
        if cause:
            return f"install: {cause}"
        versions = module_versions(python)
        missing = [name for name, version in versions.items() if version is None]
        if not missing and locked and versions["vllm"].split("+")[0] != locked:
            return f"vllm {versions['vllm']} still imports after installing the locked {locked}"
    if missing:
        return f"{', '.join(missing)} do(es) not import"
    log("packages: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    return None


# ---------------------------------------------------------------- device


def query_gpus() -> list[tuple[str, tuple[int, int]]]:
    """(name, compute capability) of each GPU from nvidia-smi, for the log; empty without one."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        name, _, cap = line.rpartition(",")
        major, _, minor = cap.strip().partition(".")
        if major.isdigit():
            gpus.append((name.strip(), (int(major), int(minor or 0))))
    return gpus


# ---------------------------------------------------------------- the run


def run_pipeline(command: list[str], env: dict, hard_seconds: float) -> int | None:
    """The run in its own process group; killed (with its vLLM workers) at the hard stop. None = killed.
    Its output is passed on line by line through this process's stdout, which a notebook shows (a
    child writing to the inherited descriptor may not reach the cell's output)."""
    process = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1)

    def relay():
        for line in process.stdout:
            print(line, end="", flush=True)

    relayer = threading.Thread(target=relay, daemon=True)
    relayer.start()
    try:
        code = process.wait(timeout=max(hard_seconds, 1))
    except subprocess.TimeoutExpired:
        log(f"run: still running at the hard stop ({hard_seconds:.0f}s); stopping it")
        import signal

        code = None
        for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
    relayer.join(timeout=10)  # an orphaned grandchild may hold the pipe open: do not wait on it for long
    return code


def parse_args(argv: list[str], build: dict | None = None) -> argparse.Namespace:
    env = os.environ.get
    build = build or {}
    p = argparse.ArgumentParser(
        prog="kernel",
        description="ARC Prize Kaggle kernel: fallback submission first, offline install of the vendored "
                    "wheels if needed, then the AIRV run under a time budget. Kaggle's commit run (saving a "
                    f"version) runs the placeholder tasks under --commit-budget and fails when the run could not "
                    f"score; the scoring rerun ({RERUN_VARIABLE} set) runs under --time-budget and never fails "
                    "while a valid submission exists. Options after a lone '--' go to 'python -m submission "
                    "run' (after the ones built into the kernel).",
    )
    p.add_argument("--mode", choices=("commit", "rerun"), default=kernel_mode(os.environ),
                   help=f"commit run or scoring rerun (default: rerun when {RERUN_VARIABLE} is set, else commit; "
                        "here: %(default)s)")
    p.add_argument("--input-dir", type=Path, default=Path(env("KAGGLE_INPUT_DIR", DEFAULT_INPUT_DIR)),
                   help="where the competition data and the datasets are mounted (env KAGGLE_INPUT_DIR; "
                        "default: %(default)s)")
    p.add_argument("--working-dir", type=Path, default=Path(env("KAGGLE_WORKING_DIR", DEFAULT_WORKING_DIR)),
                   help="where submission.json goes: Kaggle's output, kept small (env KAGGLE_WORKING_DIR; "
                        "default: %(default)s)")
    p.add_argument("--scratch-dir", type=Path,
                   default=Path(env("ARC_SCRATCH_DIR", str(Path(tempfile.gettempdir()) / "arc-kernel"))),
                   help="for what is not output: test-time adapters, the preflight's run, pip's requirements "
                        "(env ARC_SCRATCH_DIR; default: %(default)s)")
    p.add_argument("--competition", default=env("ARC_COMPETITION", build.get("competition") or DEFAULT_COMPETITION),
                   help="competition slug, whose mount is searched first (env ARC_COMPETITION; default: %(default)s)")
    p.add_argument("--challenges", type=Path, default=env("ARC_CHALLENGES"),
                   help="challenges file (env ARC_CHALLENGES); default: the competition's *test_challenges.json")
    p.add_argument("--model", type=Path, default=env("ARC_MODEL_DIR"),
                   help="model folder (env ARC_MODEL_DIR); default: the one built in (build_bundle.py --model-path), "
                        "else the folder with arc_format.json, else a Kaggle Models mount under the input dir")
    p.add_argument("--wheels-dir", type=Path, default=env("ARC_WHEELS_DIR"),
                   help="vendored wheels (env ARC_WHEELS_DIR); default: the folder of .whl files under the input dir")
    p.add_argument("--time-budget", type=float, default=float(env("ARC_TIME_BUDGET", DEFAULT_TIME_BUDGET)),
                   help="seconds for the whole scoring rerun, install included (env ARC_TIME_BUDGET; default: "
                        "%(default)s = 11 h)")
    p.add_argument("--commit-budget", type=float, default=float(env("ARC_COMMIT_BUDGET", DEFAULT_COMMIT_BUDGET)),
                   help="seconds for the whole commit run (env ARC_COMMIT_BUDGET; default: %(default)s = 20 min)")
    p.add_argument("--no-install", action="store_true", default=bool(env("ARC_NO_INSTALL")),
                   help="never pip install: use the vllm that imports, saying so if it is not the locked version "
                        "(env ARC_NO_INSTALL; for a rehearsal on a machine with its own vllm)")
    p.add_argument("--check", action="store_true",
                   help="preflight, a few minutes: the machine, the wheels, the install, the engine on one small "
                        "task, and the projected time of the whole test set against the budget, ending in a "
                        "verdict line; the fallback submission stays in place")
    return p.parse_args(argv)


def split_run_args(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: list[str] | None = None, run_args: list[str] = (), package_root: str | None = None,
         build: dict | None = None) -> int:
    """The kernel as a command; its exit status (see Outcome)."""
    return kernel(list(sys.argv[1:] if argv is None else argv), run_args, package_root, build).code


def kernel(argv: list[str], run_args: list[str] = (), package_root: str | None = None,
           build: dict | None = None) -> Outcome:
    own, extra_run_args = split_run_args(list(argv))
    args = parse_args(own, build)
    python = sys.executable
    package_root = package_root or str(Path(__file__).resolve().parent.parent)
    commit = args.mode == "commit"
    if commit:
        log(f"mode: commit run ({RERUN_VARIABLE} unset): the placeholder tasks within {args.commit_budget:.0f}s; "
            "this run FAILS if it could not score (no challenges, no engine, no answer that parses)")
    else:
        log(f"mode: scoring rerun ({RERUN_VARIABLE}={os.environ.get(RERUN_VARIABLE, '')!r}): the hidden tasks "
            f"within {args.time_budget:.0f}s; it never fails while a valid submission.json exists")
    log(f"start: python {sys.version.split()[0]}, package from {package_root}"
        + (f", build {build.get('commit', '?')}" if build else "")
        + (f", {describe_lock(build['lock'])}" if build and build.get("lock") else ""))

    # 1. the challenges, and a fallback submission before anything can fail
    candidates = [args.challenges] if args.challenges else find_challenges(args.input_dir, args.competition)
    if not candidates:
        return failed(f"no *test_challenges.json under {args.input_dir} (looked in competitions/{args.competition}/, "
                      f"{args.competition}/, then everywhere): attach the competition, or set --challenges "
                      "(ARC_CHALLENGES); no submission can be written", code=1)
    challenges_path = candidates[0]
    try:
        raw = read_json(challenges_path)
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object of tasks, got {type(raw).__name__}")
    except (OSError, ValueError) as exc:
        return failed(f"challenges file {challenges_path}: {exc}; no submission can be written", code=1)
    submission_path = args.working_dir / "submission.json"
    fallback = fallback_submission(raw)
    write_json_atomic(submission_path, fallback)
    n_tests = sum(len(test_inputs(t)) for t in raw.values())
    log(f"challenges: {challenges_path}" + (f" (also found, not used: {', '.join(map(str, candidates[1:]))})"
                                             if len(candidates) > 1 else ""))
    own = (args.input_dir / "competitions" / args.competition, args.input_dir / args.competition)
    if not args.challenges and challenges_path.parent not in own:
        log(f"warning: the competition's folder ({own[0]} or {own[1]}) is not mounted: is {args.competition} attached "
            f"(kernel-metadata's competition_sources)? Using {challenges_path}, found by searching")
    log(f"fallback: {submission_path} written for {len(raw)} tasks, {n_tests} test inputs")

    try:
        cause = run_job(args, python, package_root, challenges_path, run_args, extra_run_args, raw, fallback,
                        submission_path, build or {})
    except Exception as exc:  # whatever happens, the fallback (or a validated result) stays
        cause = f"{type(exc).__name__}: {exc}"

    # 5. the final word: the file on disk must validate, or the fallback goes back
    try:
        problems = submission_problems(raw, read_json(submission_path))
    except (OSError, ValueError) as exc:
        problems = [f"unreadable: {exc}"]
    if problems:
        log(f"final check: {len(problems)} problem(s) ({problems[0]}); writing the fallback again")
        write_json_atomic(submission_path, fallback)
    log(f"done: {submission_path} is valid")
    if cause and commit:
        return failed(f"commit run: {cause}. {submission_path} holds the fallback; this version would score 0: "
                      "do not submit it", code=2)
    if cause:
        log(f"error (the rerun goes on with a valid submission.json): {cause}")
    return Outcome(0)


def failed(reason: str, code: int) -> Outcome:
    log(f"FAILED: {reason}")
    return Outcome(code, reason)


def run_job(args, python: str, package_root: str, challenges_path: Path, run_args, extra_run_args,
            raw: dict, fallback: dict, submission_path: Path, build: dict) -> str | None:
    """Steps 2-4 and the commit run's report; None when the run made answers that parse, else why not."""
    deadline = _started + (min(args.time_budget, args.commit_budget) if args.mode == "commit" else args.time_budget)

    # 2. the packages: vendored wheels when the image lacks them or holds another vllm
    cause = ensure_packages(args, python, build.get("lock"))
    if cause:
        return f"{cause}; the engine cannot start"

    # 3. the model and the device
    if args.model:
        model_dir, why = args.model, "--model / ARC_MODEL_DIR"
    else:
        model_dir, why = choose_model(args.input_dir, build.get("model_path"))
        if model_dir is None:
            return why
    gpus = query_gpus()
    device = ", ".join(f"{name} (compute {a}.{b})" for name, (a, b) in gpus) or "no GPU (CPU)"
    log(f"model: {model_dir} ({why}); device: {device}")
    too_old = [(name, cc) for name, cc in gpus if tuple(cc) < (7, 0)]
    if too_old:  # vLLM would fail after minutes of start-up: say so now
        name, (a, b) = too_old[0]
        return (f"GPU {name} has compute capability {a}.{b}; vLLM needs 7.0 or newer: give the kernel another "
                f"accelerator (build_bundle.py --machine-shape NvidiaL4)")
    if not gpus:
        log("warning: no GPU found (nvidia-smi): vLLM's CUDA build cannot run without one; on Kaggle, give the "
            "kernel a GPU accelerator (kernel-metadata's machine_shape)")

    all_run_args = ["--adapters-dir", str(args.scratch_dir / "adapters"), *run_args, *extra_run_args]
    if args.check:
        return preflight_run(args, python, package_root, raw, model_dir, gpus, all_run_args)

    # 4. the run, in a child process under the time budget
    run_dir = args.working_dir / RUN_FOLDER
    remaining = deadline - time.monotonic()
    limits = child_time_limits(remaining)
    if limits is None:
        return f"only {remaining:.0f}s of the time budget left, too little to start the run"
    hard, budget = limits
    command = [python, "-m", "submission", "run", "--challenges", str(challenges_path), "--model", str(model_dir),
               "--out", str(run_dir), "--time-budget", f"{budget:.0f}", *all_run_args]
    log(f"run: {' '.join(command[1:])}")
    run_started = time.monotonic()
    code = run_pipeline(command, child_env(package_root), hard)
    status = "killed at the hard stop" if code is None else f"exit {code}"
    log(f"run: {status}; {adopt_result(raw, fallback, run_dir / 'submission.json', submission_path)}")
    measured = measure_run(run_dir)
    if isinstance(measured, str):
        return measured
    if args.mode == "commit":
        views = measured["views"] or configured_views(all_run_args)  # what the run recorded using
        engines = measured["engines"]
        left = args.time_budget - (run_started - _started) - measured["start_seconds"] - SOFT_MARGIN - HARD_MARGIN
        speed_report(measured, raw, HIDDEN_TASKS, views, 1.0, left, engines, "the hidden test set")
    if not measured["parsed"]:
        return (f"none of the run's {measured['predictions']} predictions parsed to a grid: a broken model or a "
                "prompt-format mismatch (check the model's arc_format.json; `python -m submission prompt` shows what "
                "the model is asked)")
    return None


def child_env(package_root: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def measure_run(run_dir: Path) -> dict | str:
    """What a finished run measured (run.json and its predictions), or why there is nothing to measure."""
    try:
        record = read_json(run_dir / "run.json")
    except (OSError, ValueError) as exc:
        return f"the run left no run.json ({exc}); see its lines above"
    status = str(record.get("status"))
    if status.startswith("engine could not start"):
        return f"the {status}"
    tokens = 0
    try:
        with open(run_dir / "predictions.jsonl", "rb") as f:
            for line in f:
                tokens += json.loads(line).get("token_count") or 0
    except (OSError, ValueError):
        pass
    engine = record.get("engine") or {}
    return {"status": status, "prompts": record.get("prompts_sent") or 0,
            "generate": (record.get("stage_seconds") or {}).get("generate", 0.0), "tokens": tokens,
            "predictions": record.get("predictions") or 0, "parsed": record.get("parsed") or 0,
            "seconds": record.get("seconds") or 0.0, "ttt": record.get("ttt"),
            "engines": engine.get("workers") or 1,
            "views": ((record.get("settings") or {}).get("views") or {}).get("augmentations"),
            "start_seconds": max([engine.get("start_seconds") or 0.0]
                                 + [e.get("start_seconds") or 0.0 for e in engine.get("each") or []])}


def child_time_limits(remaining: float) -> tuple[float, float] | None:
    """(hard stop, the run's own --time-budget), seconds from now, for a run with ``remaining``
    seconds of the kernel's budget: the run is told to end SOFT_MARGIN before it would be killed,
    so its final writes land; None when too little is left to start one."""
    hard = remaining - HARD_MARGIN
    if hard < 2 * SOFT_MARGIN:
        return None
    return hard, hard - SOFT_MARGIN


CHECK_SECONDS = 240  # the preflight's measurement: one small task's views, after engine start-up
CHECK_STARTUP_ALLOWANCE = 900  # engine start-up is not measured: a slow start (a busy disk) must not eat it
CHECK_VIEWS = 8


def machine_facts() -> list[str]:
    """Python, glibc and each GPU as nvidia-smi reports it (name, compute capability, memory, driver)."""
    import platform

    libc, version = platform.libc_ver()
    facts = [f"python {sys.version.split()[0]} ({sys.executable})", f"C library {libc or '?'} {version}"]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
        gpus = [line.strip() for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        gpus = []
    facts += [f"GPU {i}: {line}" for i, line in enumerate(gpus)] or ["GPU: none (nvidia-smi found none)"]
    return facts


def configured_views(run_args: list[str]) -> int:
    """Views per test input the run arguments ask for: --augmentations, else run's default (read
    from settings.py, importable once the packages are installed)."""
    given = _option(run_args, "--augmentations", "")
    if given:
        return int(given)
    from .settings import RunSettings

    return RunSettings().views.augmentations


def _option(args: list[str], name: str, default: str) -> str:
    value = default
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def smallest_task(raw: dict) -> str:
    def cells(task) -> int:
        grids = [g for pair in task.get("train", []) for g in (pair.get("input"), pair.get("output"))]
        grids += [t.get("input") for t in task.get("test", [])]
        return sum(len(g) * len(g[0]) for g in grids if is_grid(g))
    return min(raw, key=lambda k: (cells(raw[k]), k))


def preflight_run(args, python: str, package_root: str, raw: dict, model_dir: Path, gpus, run_args: list[str]):
    """One small task through the real run; then the whole test set's projected time and a verdict.
    Engine start-up has its own allowance, apart from the measurement. None, or the cause of a FAIL."""
    for fact in machine_facts():
        log(f"check: {fact}")
    task_id = smallest_task(raw)
    check_dir = args.scratch_dir / "check"
    check_dir.mkdir(parents=True, exist_ok=True)
    one = check_dir / "one_task.json"
    write_json_atomic(one, {task_id: raw[task_id]})
    views = configured_views(run_args)
    budget = CHECK_STARTUP_ALLOWANCE + CHECK_SECONDS
    command = [python, "-m", "submission", "run", "--challenges", str(one), "--model", str(model_dir), "--out",
               str(check_dir / "run"), *run_args, "--augmentations", str(CHECK_VIEWS), "--no-adaptive", "--fresh",
               "--workers", "1", "--time-budget", str(budget)]
    log(f"check: the engine on task {task_id} ({CHECK_VIEWS} views; {CHECK_STARTUP_ALLOWANCE}s allowed for start-up, "
        f"then {CHECK_SECONDS}s): {' '.join(command[1:])}")
    started = time.monotonic()
    code = run_pipeline(command, child_env(package_root), budget + 60)
    measured = measure_run(check_dir / "run")
    if isinstance(measured, str):
        log(f"verdict: FAIL: {measured} (exit {code})")
        return measured
    if not measured["prompts"] or not measured["generate"]:
        cause = f"the check run ended '{measured['status']}' after {measured['prompts']} prompts; see above"
        log(f"verdict: FAIL: {cause}")
        return cause
    log(f"check: engine start-up {measured['start_seconds']:.0f}s (not counted in the measurement)")
    engines = max(len(gpus), 1)
    left = _started + args.time_budget - time.monotonic() - (time.monotonic() - started)
    tests_per_task = sum(len(test_inputs(t)) for t in raw.values()) / max(len(raw), 1)
    speed_report(measured, raw, len(raw), views, 1 / engines, left, engines, "the whole test set",
                 tests_per_task=tests_per_task)
    return None


def speed_report(measured: dict, raw: dict, tasks: int, views: int, speedup_inverse: float, left: float,
                 engines: int, label: str, tests_per_task: float | None = None) -> None:
    """Log the measured generation speed, the projected time of ``tasks`` tasks at ``views`` views
    (the measured seconds per prompt, times ``speedup_inverse``: 1/engines when one engine measured
    for several), test-time fine-tuning's share, and one verdict line against ``left`` seconds."""
    prompts, generate = measured["prompts"], measured["generate"]
    if not prompts or not generate:
        log(f"check: no generation to measure (status '{measured['status']}')")
        return
    if tests_per_task is None:
        tests_per_task = sum(len(test_inputs(t)) for t in raw.values()) / max(len(raw), 1)
    per_prompt = generate / prompts
    test_inputs_total = round(tasks * tests_per_task)
    projected = per_prompt * speedup_inverse * test_inputs_total * views
    log(f"check: {prompts} prompts in {generate:.1f}s of generation ({measured['tokens'] / generate:,.0f} generated "
        f"tokens/s, {per_prompt:.2f}s per prompt; engine start-up and the rest "
        f"{measured['seconds'] - generate:.0f}s)")
    log(f"check: {label}, {tasks} tasks = about {test_inputs_total} test inputs x {views} views on {engines} "
        f"engine(s): about {_minutes(projected)} at this rate (measured on a smaller batch: more prompts at "
        "once go faster)")
    training, training_lines, training_advice = training_projection(measured.get("ttt"), tasks, engines, left)
    for line in training_lines:
        log(f"check: {line}")
    left -= training
    if training_advice:
        log(f"verdict: TOO SLOW: {training_advice}")
    elif projected <= 0.8 * left:
        log(f"verdict: OK: about {_minutes(projected)} of the {_minutes(left)} left in the budget"
            + (" after test-time fine-tuning" if training else ""))
    else:
        fit = max(1, int(views * 0.8 * left / projected))
        log(f"verdict: TOO SLOW: about {_minutes(projected)} against {_minutes(left)} left"
            + (" after test-time fine-tuning" if training else "")
            + f"; lower --augmentations to about {fit} (or rely on --time-budget cutting rounds)")


def training_projection(ttt: dict | None, tasks: int, engines: int, left: float) -> tuple[float, list[str], str]:
    """Test-time fine-tuning of the whole test set, projected from the check run's adapter (run.json's
    ``ttt`` record): (seconds it would take, the lines to log, advice when it does not fit its share
    of the ``left`` seconds, else ""). Per task, the adapters train one child per GPU; shared is one."""
    if not ttt:
        return 0.0, [], ""
    adapters = ttt.get("adapters") or {}
    steps = sum(a.get("steps") or 0 for a in adapters.values())
    seconds = sum(a.get("seconds") or 0.0 for a in adapters.values())
    settings = ttt.get("settings") or {}
    if not steps or not seconds:
        return 0.0, ["test-time fine-tuning trained no step in the check run (see its lines above): "
                     "the real run's tasks would all use the base model"], ""
    per_step = seconds / steps
    mode, planned, share = settings.get("mode"), settings.get("steps") or steps, settings.get("share") or 0.0
    count = tasks if mode == "task" else 1
    parallel = min(engines, count) if mode == "task" else 1
    projected = per_step * planned * count / parallel
    allowed = share * left
    lines = [f"test-time fine-tuning: {steps} steps in {seconds:.1f}s ({per_step:.2f}s per step of "
             f"{settings.get('examples_per_step')} examples, rank {settings.get('rank')})",
             f"test-time fine-tuning of the whole test set ({mode}): {count} adapter(s) x {planned} steps on "
             f"{parallel} GPU(s): about {_minutes(projected)} against its share, {_minutes(allowed)} "
             f"(--ttt-share {share})"]
    if projected <= allowed:
        return projected, lines, ""
    fit = int(allowed * parallel / (per_step * count))
    advice = (f"test-time fine-tuning needs about {_minutes(projected)} against {_minutes(allowed)}; "
              + (f"lower --ttt-steps to about {fit}" if fit >= (settings.get("min_steps") or 1) else
                 "too slow even at --ttt-min-steps: the run trains what fits and predicts the rest with the base model")
              + " or raise --ttt-share")
    return allowed, lines, advice


def adopt_result(raw: dict, fallback: dict, result_path: Path, submission_path: Path) -> str:
    """Put the run's submission in place if it validates and says more than the fallback; what happened."""
    try:
        result = read_json(result_path)
    except (OSError, ValueError) as exc:
        return f"no usable {result_path} ({exc}); {submission_path} keeps the fallback"
    problems = submission_problems(raw, result)
    if problems:
        return f"{result_path} is invalid ({problems[0]}); {submission_path} keeps the fallback"
    if result == fallback:
        return f"the run has nothing beyond the fallback; {submission_path} keeps the fallback"
    write_json_atomic(submission_path, result)
    return f"{submission_path} replaced by the run's validated submission"
