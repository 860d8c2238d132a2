"""The Kaggle kernel's start-up: never end without a valid submission.json, then do the real job.

Order, each step logged in one line:
 1. find the competition's test challenges file under the input root and write a fallback
    submission.json at once (the test inputs themselves), so nothing later can leave the run without one;
 2. if vllm, numpy or orjson do not import, install the vendored wheels (``pip install --no-index
    --find-links``) from the wheels dataset, found by looking under the input root;
 3. find the model folder (a folder with config.json), log the GPUs and their compute capability
    (the run picks the dtype from the device itself);
 4. run ``python -m submission run`` in a child process under the time budget; a crash, a model that
    does not load or a hard time-out there leaves the fallback in place;
 5. copy the run's submission.json over the fallback only if it validates against the challenges.

This module is imported before anything is installed: it uses the standard library only (the
package's own modules need numpy and orjson). The same file runs locally: every path comes from an
option or an environment variable, with Kaggle's folders as defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_INPUT_DIR = "/kaggle/input"
DEFAULT_WORKING_DIR = "/kaggle/working"
DEFAULT_TIME_BUDGET = 11 * 3600  # seconds for the whole kernel; Kaggle stops GPU runs at 12 h
REQUIRED_MODULES = ("vllm", "numpy", "orjson")
LOCK_NAME = "wheels.lock.json"  # build_bundle.py copies the lock into the wheels dataset
RUN_FOLDER = "run"  # under the working dir: the run's predictions.jsonl, run.json, submission.json
SEARCH_DEPTH = 6  # Kaggle Models mount as <input>/<model>/<framework>/<variation>/<version>/
SOFT_MARGIN = 90  # seconds: the run is told to finish this long before the hard stop
HARD_MARGIN = 20  # seconds kept after the hard stop to validate and copy the result
MAX_SIDE = 30
FALLBACK_GRID = [[0]]

_started = time.monotonic()


def log(message: str) -> None:
    print(f"[kernel {time.monotonic() - _started:7.1f}s] {message}", flush=True)


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


def find_challenges(input_dir: Path) -> list[Path]:
    """Every ``*test_challenges.json`` under the input root, the newest competition first."""
    found = [folder / name for folder, names, _ in walk(input_dir) for name in names
             if name.endswith("test_challenges.json")]
    return sorted(found, key=lambda p: (-competition_year(p), len(p.parts), str(p)))


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


def find_model_dirs(input_dir: Path) -> list[Path]:
    """Folders with a model's config.json; those with weights and a tokenizer first."""
    found = []
    for folder, names, _ in walk(input_dir):
        if not is_model_dir(folder, names):
            continue
        has_weights = any(n.endswith((".safetensors", ".bin")) for n in names)
        has_tokenizer = "tokenizer.json" in names or "tokenizer_config.json" in names
        found.append((not has_weights, not has_tokenizer, len(folder.parts), str(folder), folder))
    return [entry[-1] for entry in sorted(found)]


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


_IMPORT_PROBE = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        print(name)
"""


def missing_modules(python: str, modules=REQUIRED_MODULES) -> list[str]:
    """Modules that do not import, probed in a fresh interpreter (a failed import would taint this one)."""
    probe = subprocess.run([python, "-c", _IMPORT_PROBE, *modules], capture_output=True, text=True)
    if probe.returncode != 0:  # the probe itself died (e.g. a crashing extension): trust none of them
        return list(modules)
    return probe.stdout.split()


def lock_targets(lock: dict) -> list[dict]:
    """The lock's per-Python parts, each {"target": ..., "wheels": [...]}: a lock of several Pythons
    lists them under "locks"; an older lock of one Python has its target and wheels at the top."""
    return list(lock["locks"]) if "locks" in lock else [{"target": lock["target"], "wheels": lock["wheels"]}]


def lock_for_python(lock: dict, version: str) -> dict | None:
    return next((part for part in lock_targets(lock) if part["target"]["python_version"] == version), None)


def install_requirements(wheels_dir: Path, python_version: str) -> list[str]:
    """Exact pins from the lock shipped with the wheels (its part for this Python), else every wheel
    file of the folder."""
    lock_path = wheels_dir / LOCK_NAME
    if lock_path.is_file():
        try:
            part = lock_for_python(read_json(lock_path), python_version)
            if part is not None:
                return [f"{w['name']}=={w['version']}" for w in part["wheels"]]
            log(f"install: {lock_path} has no part for Python {python_version}; installing every wheel of the folder")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log(f"install: {lock_path} is unreadable ({exc}); installing every wheel of the folder")
    return [str(p) for p in sorted(wheels_dir.glob("*.whl"))]


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


def install_wheels(wheels_dir: Path, python: str = sys.executable) -> bool:
    mismatch = wrong_python(wheels_dir, python)
    if mismatch:
        log(f"install: {mismatch}")
        return False
    requirements = install_requirements(wheels_dir, interpreter_version(python))
    if not requirements:
        log(f"install: no wheels in {wheels_dir}")
        return False
    log(f"install: {len(requirements)} packages from {wheels_dir} (pip --no-index)")
    started = time.monotonic()
    result = subprocess.run(
        [python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels_dir), "--quiet",
         "--disable-pip-version-check", "--no-warn-script-location", *requirements],
        capture_output=True, text=True,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        log(f"install: pip failed (exit {result.returncode}): {' | '.join(tail)}")
        return False
    log(f"install: done in {time.monotonic() - started:.0f}s")
    return True


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
    """The run in its own process group; killed (with its vLLM workers) at the hard stop. None = killed."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return process.wait(timeout=max(hard_seconds, 1))
    except subprocess.TimeoutExpired:
        log(f"run: still running at the hard stop ({hard_seconds:.0f}s); stopping it")
        import signal

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
        return None


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(
        prog="kernel",
        description="ARC Prize Kaggle kernel: fallback submission first, offline install of the vendored "
                    "wheels if needed, then the AIRV run under a time budget. Options after a lone '--' go "
                    "to 'python -m submission run' (after the ones built into the kernel).",
    )
    p.add_argument("--input-dir", type=Path, default=Path(env("KAGGLE_INPUT_DIR", DEFAULT_INPUT_DIR)),
                   help="where the competition data and the datasets are mounted (env KAGGLE_INPUT_DIR; "
                        "default: %(default)s)")
    p.add_argument("--working-dir", type=Path, default=Path(env("KAGGLE_WORKING_DIR", DEFAULT_WORKING_DIR)),
                   help="where submission.json goes (env KAGGLE_WORKING_DIR; default: %(default)s)")
    p.add_argument("--challenges", type=Path, default=env("ARC_CHALLENGES"),
                   help="challenges file (env ARC_CHALLENGES); default: the newest competition's "
                        "*test_challenges.json under the input dir")
    p.add_argument("--model", type=Path, default=env("ARC_MODEL_DIR"),
                   help="model folder (env ARC_MODEL_DIR); default: the folder with a model's config.json "
                        "under the input dir")
    p.add_argument("--wheels-dir", type=Path, default=env("ARC_WHEELS_DIR"),
                   help="vendored wheels (env ARC_WHEELS_DIR); default: the folder of .whl files under the input dir")
    p.add_argument("--time-budget", type=float, default=float(env("ARC_TIME_BUDGET", DEFAULT_TIME_BUDGET)),
                   help="seconds for the whole kernel, install included (env ARC_TIME_BUDGET; default: "
                        "%(default)s = 11 h)")
    p.add_argument("--no-install", action="store_true", help="never pip install, even if vllm does not import")
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
    """The kernel. Returns 0 whenever a valid submission.json is in place, 1 when none could be written."""
    own, extra_run_args = split_run_args(list(sys.argv[1:] if argv is None else argv))
    args = parse_args(own)
    python = sys.executable
    package_root = package_root or str(Path(__file__).resolve().parent.parent)
    log(f"start: python {sys.version.split()[0]}, package from {package_root}"
        + (f", build {build.get('commit', '?')}" if build else ""))

    # 1. the challenges, and a fallback submission before anything can fail
    candidates = [args.challenges] if args.challenges else find_challenges(args.input_dir)
    if not candidates:
        log(f"error: no *test_challenges.json under {args.input_dir} (set --challenges or ARC_CHALLENGES); "
            f"no submission can be written")
        return 1
    challenges_path = candidates[0]
    try:
        raw = read_json(challenges_path)
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object of tasks, got {type(raw).__name__}")
    except (OSError, ValueError) as exc:
        log(f"error: challenges file {challenges_path}: {exc}; no submission can be written")
        return 1
    submission_path = args.working_dir / "submission.json"
    fallback = fallback_submission(raw)
    write_json_atomic(submission_path, fallback)
    n_tests = sum(len(test_inputs(t)) for t in raw.values())
    log(f"fallback: {submission_path} written for {len(raw)} tasks, {n_tests} test inputs, from {challenges_path}"
        + (f" (also found: {', '.join(map(str, candidates[1:]))})" if len(candidates) > 1 else ""))

    try:
        run_job(args, python, package_root, challenges_path, run_args, extra_run_args, raw, fallback, submission_path)
    except Exception as exc:  # whatever happens, the fallback (or a validated result) stays
        log(f"error: {type(exc).__name__}: {exc}; {submission_path} keeps the fallback")

    # 5. the final word: the file on disk must validate, or the fallback goes back
    try:
        problems = submission_problems(raw, read_json(submission_path))
    except (OSError, ValueError) as exc:
        problems = [f"unreadable: {exc}"]
    if problems:
        log(f"final check: {len(problems)} problem(s) ({problems[0]}); writing the fallback again")
        write_json_atomic(submission_path, fallback)
    log(f"done: {submission_path} is valid")
    return 0


def run_job(args, python: str, package_root: str, challenges_path: Path, run_args, extra_run_args,
            raw: dict, fallback: dict, submission_path: Path) -> None:
    deadline = _started + args.time_budget

    # 2. the packages: vendored wheels when the image lacks them
    missing = missing_modules(python)
    if missing and not args.no_install:
        wheels_dir = args.wheels_dir or find_wheels_dir(args.input_dir)
        if wheels_dir is None:
            log(f"install: {', '.join(missing)} missing and no folder of .whl files under {args.input_dir}")
        else:
            install_wheels(Path(wheels_dir), python)
            missing = missing_modules(python)
    if missing:
        log(f"error: {', '.join(missing)} do(es) not import; {submission_path} keeps the fallback")
        return
    log(f"packages: {', '.join(REQUIRED_MODULES)} import")

    # 3. the model and the device
    run_dir = args.working_dir / RUN_FOLDER
    if args.model:
        model_dir = args.model
    else:
        models = find_model_dirs(args.input_dir)
        if not models:
            log(f"error: no model folder (config.json) under {args.input_dir} (set --model or ARC_MODEL_DIR); "
                f"{submission_path} keeps the fallback")
            return
        model_dir = models[0]
        if len(models) > 1:
            log(f"model: {len(models)} candidates, using the first; others: {', '.join(map(str, models[1:4]))}")
    gpus = query_gpus()
    device = ", ".join(f"{name} (compute {a}.{b})" for name, (a, b) in gpus) or "no GPU (CPU)"
    log(f"model: {model_dir}; device: {device}")
    too_old = [(name, cc) for name, cc in gpus if tuple(cc) < (7, 0)]
    if too_old:  # vLLM would fail after minutes of start-up: say so now
        name, (a, b) = too_old[0]
        log(f"error: GPU {name} has compute capability {a}.{b}; vLLM needs 7.0 or newer: give the kernel another "
            f"accelerator (build_bundle.py --machine-shape NvidiaL4); {submission_path} keeps the fallback")
        return
    if not gpus:
        log("warning: no GPU found (nvidia-smi): vLLM's CUDA build cannot run without one; on Kaggle, give the "
            "kernel a GPU accelerator (kernel-metadata's machine_shape)")

    if args.check:
        preflight_run(args, python, package_root, raw, model_dir, gpus, [*run_args, *extra_run_args])
        return

    # 4. the run, in a child process under the time budget
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    remaining = deadline - time.monotonic()
    limits = child_time_limits(remaining)
    if limits is None:
        log(f"error: only {remaining:.0f}s of the time budget left; {submission_path} keeps the fallback")
        return
    hard, budget = limits
    command = [python, "-m", "submission", "run", "--challenges", str(challenges_path), "--model", str(model_dir),
               "--out", str(run_dir), "--time-budget", f"{budget:.0f}", *run_args, *extra_run_args]
    log(f"run: {' '.join(command[1:])}")
    code = run_pipeline(command, env, hard)
    status = "killed at the hard stop" if code is None else f"exit {code}"
    log(f"run: {status}; {adopt_result(raw, fallback, run_dir / 'submission.json', submission_path)}")


def child_time_limits(remaining: float) -> tuple[float, float] | None:
    """(hard stop, the run's own --time-budget), seconds from now, for a run with ``remaining``
    seconds of the kernel's budget: the run is told to end SOFT_MARGIN before it would be killed,
    so its final writes land; None when too little is left to start one."""
    hard = remaining - HARD_MARGIN
    if hard < 2 * SOFT_MARGIN:
        return None
    return hard, hard - SOFT_MARGIN


CHECK_SECONDS = 240  # the preflight's own run: engine start-up and one small task's views
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
    """One small task through the real run; then the whole test set's projected time and a verdict."""
    for fact in machine_facts():
        log(f"check: {fact}")
    task_id = smallest_task(raw)
    check_dir = args.working_dir / "check"
    check_dir.mkdir(parents=True, exist_ok=True)
    one = check_dir / "one_task.json"
    write_json_atomic(one, {task_id: raw[task_id]})
    views = int(_option(run_args, "--augmentations", "8"))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [python, "-m", "submission", "run", "--challenges", str(one), "--model", str(model_dir), "--out",
               str(check_dir / "run"), *run_args, "--augmentations", str(CHECK_VIEWS), "--no-adaptive", "--fresh",
               "--workers", "1", "--time-budget", str(CHECK_SECONDS)]
    log(f"check: the engine on task {task_id} ({CHECK_VIEWS} views): {' '.join(command[1:])}")
    started = time.monotonic()
    code = run_pipeline(command, env, CHECK_SECONDS + 60)
    try:
        record = read_json(check_dir / "run" / "run.json")
    except (OSError, ValueError) as exc:
        log(f"verdict: FAIL: the check run left no run.json (exit {code}; {exc}); see its lines above")
        return
    prompts = record.get("prompts_sent") or 0
    generate = (record.get("stage_seconds") or {}).get("generate", 0.0)
    if record.get("status") != "done" or not prompts or not generate:
        log(f"verdict: FAIL: the check run ended '{record.get('status')}' after {prompts} prompts; see above")
        return
    tokens = 0
    with open(check_dir / "run" / "predictions.jsonl", "rb") as f:
        for line in f:
            tokens += json.loads(line).get("token_count") or 0
    engines = max(len(gpus), 1)
    test_inputs_total = sum(len(test_inputs(t)) for t in raw.values())
    per_prompt = generate / prompts
    projected = per_prompt * test_inputs_total * views / engines
    left = _started + args.time_budget - time.monotonic() - (time.monotonic() - started)
    log(f"check: {prompts} prompts in {generate:.1f}s of generation ({tokens / generate:,.0f} generated tokens/s, "
        f"{per_prompt:.2f}s per prompt on one engine, engine start-up and the rest "
        f"{record.get('seconds', 0) - generate:.0f}s)")
    log(f"check: the whole test set, {test_inputs_total} test inputs x {views} views on {engines} engine(s): "
        f"about {_minutes(projected)} at this rate (a small batch: the real run batches more and goes faster)")
    training, training_lines, training_advice = training_projection(record.get("ttt"), len(raw), engines, left)
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
