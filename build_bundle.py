#!/usr/bin/env python3
"""Build what goes to Kaggle: the vendored wheels, the one-file kernel and its kernel-metadata.json.

    python build_bundle.py --owner YOUR_KAGGLE_NAME --model-dataset YOUR_KAGGLE_NAME/your-model

1. wheels: resolves the requirements (vllm pinned, numpy, orjson) for Kaggle's Python and platform
   without downloading them (``pip install --dry-run --report``), writes the lock (name, version, file,
   sha256 of every wheel; committed), then ``pip download --only-binary=:all: --no-deps
   --require-hashes`` fetches the locked wheels that are not in wheels/ yet. With the lock in place
   and the wheels present, a second run downloads nothing. The lock and dataset-metadata.json are
   written into wheels/, so ``kaggle datasets create -p wheels`` uploads a complete dataset.
2. kernel: a notebook (.ipynb, ``kernel_type: notebook``: a code competition scores a notebook
   version) whose code cell is the kernel script: the ``submission`` package embedded (a zip,
   base64), unpacked, then ``submission.kaggle_entry.kernel``; ``--kernel-type script`` writes the
   same text as one .py file. Nothing else of the repository is needed at run time. The kernel
   carries its build's lock digest, the competition's slug and ``--model-path``.
3. kernel-metadata.json beside it, from kernel-metadata.json at the top of the repository (the
   template) and the options; both metadata files are checked against the Kaggle API's rules, and
   the commands to run next are printed.
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import io
import json
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlparse

# the lock's name inside wheels/, where the kernel looks, and how it reads a lock (stdlib only)
from submission.kaggle_entry import (DEFAULT_COMPETITION, DEFAULT_INPUT_DIR, LOCK_NAME, lock_summary, lock_targets,
                                     sha256_of)

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "submission"
TEMPLATE = ROOT / "kernel-metadata.json"

# Kaggle's image (Kaggle/docker-python, 2026): a Colab base on Ubuntu 22.04 (glibc 2.35), Python 3.12.
DEFAULT_PYTHON_VERSION = "3.12"
# and the next image's: Colab's base moved to 3.13 in August 2026, so a later Kaggle image may bring it
DEFAULT_PYTHON_VERSIONS = (DEFAULT_PYTHON_VERSION, "3.13")
DEFAULT_PLATFORM = "manylinux_2_35_x86_64"
# The last vLLM on torch 2.10, whose PyPI build is CUDA 12.8 (runs on Kaggle's CUDA 12 driver) and
# still ships Turing kernels (T4, compute 7.5); vLLM 0.20+ needs torch 2.11, whose PyPI build is CUDA 13.
DEFAULT_VLLM_VERSION = "0.19.1"
# Its dependencies are resolved as they stood when it was released (PyPI upload 2026-04-18), the set its
# CI ran with; a newer transformers or numba may no longer fit a vLLM of April 2026.
DEFAULT_UPLOADED_PRIOR_TO = "2026-04-19T00:00:00Z"
# what submission/ imports besides vllm: peft for test-time fine-tuning (run --ttt; transformers and
# torch come with vllm)
PACKAGE_REQUIREMENTS = ("numpy", "orjson", "peft")
DEFAULT_WHEELS_DIR = ROOT / "wheels"
DEFAULT_LOCK = ROOT / "wheels.lock.json"
DEFAULT_KERNEL_DIR = ROOT / "build" / "kernel"
DEFAULT_WHEELS_DATASET_SLUG = "arc-vllm-wheels"
DEFAULT_WHEELS_TITLE = "ARC vLLM offline wheels"
PLACEHOLDER_OWNER = "your-kaggle-username"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so the same sources give the same kernel file

# The Kaggle API's own rules (kaggle-cli, kaggle_api_extended.py: kernels_push, dataset_create_new).
KERNEL_TYPES = ("script", "notebook")
KERNEL_LANGUAGES = ("python", "r", "rmarkdown")
PINNING_TYPES = ("original", "latest")
# kernel-metadata.json's machine_shape: the accelerators Kaggle's CLI lists "as of Sep 2026"
# (github.com/Kaggle/kaggle-cli, docs/kernels.md, `kaggle kernels push --accelerator`; the field is
# described in docs/kernels_metadata.md). Without it a kernel runs on the account's default GPU,
# which can be one vLLM does not support (a P100): the run falls back and scores 0.
GPU_MACHINE_SHAPES = {
    "NvidiaL4": "4x L4 (24 GB each): ARC Prize 2026's ARC-AGI-2 competition",
    "NvidiaL4X1": "one L4",
    "NvidiaTeslaT4": "GPU T4",
    "NvidiaTeslaT4Highmem": "GPU T4 x2 (ARC Prize 2024-2025)",
    "NvidiaTeslaA100": "A100",
    "NvidiaH100": "H100",
    "NvidiaRtxPro6000": "RTX Pro 6000",
}
TPU_MACHINE_SHAPES = ("TpuV5E8", "TpuV6E8")  # Kaggle takes them; vLLM's CUDA wheels cannot use them
DEFAULT_MACHINE_SHAPE = "NvidiaL4"
# kaggle CLI: machine_shape is honoured from 1.8.4 (older CLIs drop it silently: the kernel runs on the
# account's default accelerator); `competitions submit -k owner/kernel -v N` needs 1.7.3
MIN_KAGGLE_CLI = (1, 8, 4)


def log(message: str) -> None:
    print(message, flush=True)


# ---------------------------------------------------------------- platform tags


def expand_platform(tag: str) -> list[str]:
    """A machine with glibc 2.N runs every manylinux wheel up to 2.N: manylinux_2_35 -> 2_35 ... 2_5 (+ aliases)."""
    m = re.fullmatch(r"manylinux_2_(\d+)_(\w+)", tag)
    if not m:
        return [tag]
    newest, arch = int(m.group(1)), m.group(2)
    tags = [f"manylinux_2_{n}_{arch}" for n in range(newest, 4, -1)]
    aliases = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{alias}_{arch}" for n, alias in aliases.items() if n <= newest]
    return tags


def native_platform() -> str:
    """This machine's manylinux tag (for testing the vendoring here)."""
    libc, version = platform.libc_ver()
    if libc != "glibc" or not version:
        sys.exit("error: --native needs a glibc Linux (manylinux wheels)")
    major, minor = version.split(".")[:2]
    return f"manylinux_{major}_{minor}_{platform.machine()}"


@functools.cache
def interpreter_version(python: str) -> str:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2], sep='.')"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: cannot run {python}")
    return out.stdout.strip()


def pip_target_args(python_version: str, platforms: list[str]) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp"]
    for tag in platforms:
        args += ["--platform", tag]
    return args


# ---------------------------------------------------------------- lock and wheels


def canonical_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entry(item: dict) -> dict:
    """name, version, file, sha256 (as the index publishes it) and, from an index, url of one resolved wheel."""
    info = item["download_info"]
    url = info["url"]
    filename = unquote(Path(urlparse(url).path).name)
    archive = info.get("archive_info", {})
    sha256 = archive.get("hashes", {}).get("sha256")
    if not sha256 and archive.get("hash", "").startswith("sha256="):
        sha256 = archive["hash"].split("=", 1)[1]
    if not sha256 and url.startswith("file://"):
        sha256 = sha256_of(Path(unquote(urlparse(url).path)))
    if not sha256:
        sys.exit(f"error: the index gave no sha256 for {filename}; cannot lock it")
    if not filename.endswith(".whl"):
        sys.exit(f"error: {filename} is not a wheel")
    entry = {"name": canonical_name(item["metadata"]["name"]), "version": item["metadata"]["version"],
             "filename": filename, "sha256": sha256}
    if url.startswith(("https://", "http://")):  # a local mirror's path means nothing elsewhere
        entry["url"] = url
    return entry


def resolve(pip_python: str, requirements: list[str], python_version: str, platforms: list[str],
            uploaded_prior_to: str | None) -> list[dict]:
    """The full set of wheels for the target, resolved by pip without downloading the wheels."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [pip_python, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
                   "--report", str(report), "--target", str(Path(tmp) / "target"),
                   *pip_target_args(python_version, platforms), *requirements]
        if uploaded_prior_to:
            command[4:4] = ["--uploaded-prior-to", uploaded_prior_to]  # pip 25.3 or newer
        log(f"wheels: resolving {' '.join(requirements)} for Python {python_version} on {platforms[0]}"
            + (f", as uploaded before {uploaded_prior_to}" if uploaded_prior_to else ""))
        if subprocess.run(command).returncode != 0:
            sys.exit("error: pip could not resolve the requirements for that target (see above)")
        items = json.loads(report.read_text())["install"]
    return sorted((lock_entry(item) for item in items), key=lambda w: w["name"])


def read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: object) -> None:
    """Write (indented, newline-terminated) unless the file already holds exactly that (its date stays)."""
    text = json.dumps(data, indent=2) + "\n"
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def missing_wheels(lock: dict, wheels_dir: Path) -> list[dict]:
    return [w for w in lock["wheels"]
            if not (wheels_dir / w["filename"]).is_file() or sha256_of(wheels_dir / w["filename"]) != w["sha256"]]


def download(pip_python: str, wheels: list[dict], wheels_dir: Path, python_version: str, platforms: list[str]) -> None:
    """pip download of exactly the locked files: pinned versions, checked against the locked hashes."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text("".join(f"{w['name']}=={w['version']} --hash=sha256:{w['sha256']}\n" for w in wheels))
        command = [pip_python, "-m", "pip", "download", "--no-deps", "--require-hashes", "--quiet",
                   *pip_target_args(python_version, platforms), "--dest", str(wheels_dir), "-r", str(requirements)]
        if subprocess.run(command).returncode != 0:
            sys.exit("error: pip download failed (see above)")
    still_missing = missing_wheels({"wheels": wheels}, wheels_dir)
    if still_missing:
        sys.exit(f"error: after the download, {len(still_missing)} locked wheel(s) are missing or differ: "
                 + ", ".join(w["filename"] for w in still_missing[:5]))


def lock_parts(lock: dict | None) -> list[dict]:
    """The per-Python parts of a lock (kaggle_entry reads both layouts); [] for none or another format."""
    try:
        return lock_targets(lock) if lock else []
    except (KeyError, TypeError):
        return []


def pip_python_for(version: str, pythons: list[str]) -> str:
    """The interpreter of ``pythons`` whose version is ``version``, else the first."""
    return next((p for p in pythons if interpreter_version(p) == version), pythons[0])


def vendor_wheels(args, requirements: list[str], python_versions: list[str], platforms: list[str],
                  uploaded_prior_to: str | None) -> dict:
    """One lock part per Python in one wheel folder: the files the parts share (pure-Python and abi3
    wheels) are downloaded and shipped once; the kernel installs the part of its own interpreter."""
    lock = read_lock(args.lock)
    same_requirements = bool(lock) and lock.get("requirements") == requirements
    before = {} if args.relock or not same_requirements else {
        json.dumps(part["target"], sort_keys=True): part for part in lock_parts(lock)}
    parts, resolved = [], 0
    for version in python_versions:
        pip_python = pip_python_for(version, args.pip_python)
        target = {"python_version": version, "platforms": platforms, "implementation": "cp",
                  "uploaded_prior_to": uploaded_prior_to}
        part = before.get(json.dumps(target, sort_keys=True))
        if part is None:
            if interpreter_version(pip_python) != version:
                log(f"wheels: note: pip evaluates dependency markers (python_version < ...) for the interpreter it "
                    f"runs under, Python {interpreter_version(pip_python)}, not {version}: add a Python {version} "
                    "to --pip-python for an exact lock of that Python")
            part = {"target": target,
                    "wheels": resolve(pip_python, requirements, version, platforms, uploaded_prior_to)}
            resolved += 1
        parts.append(part)
    if lock and not same_requirements and not args.relock:
        log(f"wheels: the lock {args.lock} is for other requirements; resolved again")
    # the lock holds exactly the Pythons asked for (write_json leaves an unchanged file alone)
    lock = {
        "comment": "Written by build_bundle.py: every wheel the Kaggle kernel installs, per Python, with the "
                   "sha256 the index publishes. The wheels themselves stay out of git (wheels/).",
        "requirements": requirements,
        "locks": parts,
    }
    write_json(args.lock, lock)
    names = [{w["filename"] for w in part["wheels"]} for part in parts]
    files = set().union(*names)
    sizes = ", ".join(f"{part['target']['python_version']} ({len(part['wheels'])} wheels)" for part in parts)
    log(f"wheels: {'wrote' if resolved else 'using'} the lock {args.lock}: Python {sizes}; "
        f"{len(files)} files, {len(set.intersection(*names)) if len(parts) > 1 else 0} of them shared by every Python")
    if args.lock_only:
        return lock
    downloaded = 0
    for part in parts:
        missing = missing_wheels(part, args.wheels_dir)
        if missing:
            log(f"wheels: downloading {len(missing)} of Python {part['target']['python_version']}'s "
                f"{len(part['wheels'])} into {args.wheels_dir}")
            version = part["target"]["python_version"]
            download(pip_python_for(version, args.pip_python), missing, args.wheels_dir, version, platforms)
            downloaded += len(missing)
    log(f"wheels: all {len(files)} locked wheels present in {args.wheels_dir}; downloaded {downloaded}")
    extra = sorted(p.name for p in args.wheels_dir.glob("*.whl") if p.name not in files)
    if extra:
        log(f"wheels: note: {len(extra)} wheel(s) in {args.wheels_dir} are not in the lock (the kernel installs "
            f"only locked pins; delete them to keep the upload small): {', '.join(extra[:5])}")
    write_json(args.wheels_dir / LOCK_NAME, lock)
    return lock


# ---------------------------------------------------------------- the kernel file


def package_zip(package_dir: Path = PACKAGE) -> bytes:
    """The package's .py files in a deterministic zip (fixed dates, sorted)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(package_dir.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            info = zipfile.ZipInfo(str(path.relative_to(package_dir.parent)), ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, path.read_bytes())
    return buffer.getvalue()


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "submission"],
                               capture_output=True, text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


KERNEL_TEMPLATE = '''#!/usr/bin/env python3
"""{title}: the offline ARC Prize submission kernel, built by build_bundle.py (commit {commit}).

Self-contained: the `submission` package is embedded below (a zip, base64) and unpacked into a
temporary folder at start-up. On Kaggle it reads /kaggle/input and writes /kaggle/working/submission.json.
The commit run (saving a version) runs the placeholder tasks briefly and fails, naming the cause, when
the run could not score; the scoring rerun (KAGGLE_IS_COMPETITION_RERUN set) runs the hidden tasks.
As a script elsewhere: python kernel.py --input-dir DIR --working-dir DIR [-- options of
'python -m submission run']; as a notebook, the same through KAGGLE_INPUT_DIR, KAGGLE_WORKING_DIR, ...
See the README section "Kaggle".
"""
import base64
import io
import shutil
import sys
import tempfile
import zipfile

BUILD = {build!r}
RUN_ARGS = {run_args!r}  # built-in options of 'python -m submission run'
PACKAGE_ZIP = (
{package_lines}
)


class KernelFailed(RuntimeError):
    """The commit run found a cause that would score 0 (the log's last line names it): do not submit this version."""


def unpack_package() -> str:
    root = tempfile.mkdtemp(prefix="arc_bundle_")
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(PACKAGE_ZIP))) as archive:
        archive.extractall(root)
    return root


if __name__ == "__main__":
    in_notebook = "ipykernel" in sys.modules  # a notebook's argv belongs to Jupyter, and sys.exit reads as an error
    root = unpack_package()
    sys.path.insert(0, root)  # the kernel's own package, unpacked above: Kaggle installs nothing of ours
    try:
        from submission.kaggle_entry import kernel

        outcome = kernel([] if in_notebook else sys.argv[1:], run_args=RUN_ARGS, package_root=root, build=BUILD)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if outcome.code and in_notebook:
        raise KernelFailed(outcome.reason)  # the cell fails, so the version does too
    if outcome.code:
        sys.exit(outcome.code)
'''


def kernel_source(title: str, code_file: str, run_args: list[str], extra_build: dict) -> tuple[str, dict]:
    """The kernel script's text (the one source of both kernel types) and its BUILD record."""
    data = package_zip()
    encoded = base64.b64encode(data).decode()
    build = {"commit": git_commit(), "package_sha256": hashlib.sha256(data).hexdigest(), **extra_build}
    lines = "\n".join(f'    "{encoded[i:i + 100]}"' for i in range(0, len(encoded), 100))
    text = KERNEL_TEMPLATE.format(title=title, commit=build["commit"], build=build, run_args=list(run_args),
                                  package_lines=lines)
    return text, build


def notebook_json(title: str, source: str) -> dict:
    """An nbformat 4 notebook: a title cell, then the kernel script as its one code cell."""
    intro = (f"# {title}\n\nBuilt by build_bundle.py. One code cell: the offline ARC Prize kernel (the `submission` "
             "package embedded). Kaggle's commit run checks the bundle on the placeholder tasks and fails, naming "
             "the cause, when it could not score; the scoring rerun predicts the hidden tasks.")
    return {
        "cells": [
            {"cell_type": "markdown", "id": "about", "metadata": {}, "source": intro.splitlines(keepends=True)},
            {"cell_type": "code", "execution_count": None, "id": "kernel", "metadata": {}, "outputs": [],
             "source": source.splitlines(keepends=True)},
        ],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def build_kernel(path: Path, title: str, run_args: list[str], kernel_type: str = "notebook",
                 extra_build: dict | None = None) -> dict:
    text, build = kernel_source(title, path.name, run_args, extra_build or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    if kernel_type == "notebook":
        path.write_text(json.dumps(notebook_json(title, text), indent=1) + "\n")
    else:
        path.write_text(text)
    log(f"kernel: wrote {path} ({kernel_type}, {path.stat().st_size // 1024} KiB; commit {build['commit']})")
    return build


def build_record(args, meta: dict, lock: dict | None) -> dict:
    """What the kernel carries besides the package: the competition it reads first, the model path
    chosen here, and the lock its wheels dataset must hold."""
    record = {"competition": (meta.get("competition_sources") or [DEFAULT_COMPETITION])[0]}
    if args.model_path:
        record["model_path"] = args.model_path
    if lock:
        record["lock"] = lock_summary(lock)
    return record


def check_run_args(run_args: list[str]) -> None:
    """The built-in run options must parse, so a typo fails here rather than on Kaggle."""
    try:
        from submission.cli import build_parser
    except ImportError as exc:
        log(f"kernel: note: cannot check --run-args here ({exc})")
        return
    sample = ROOT / "data" / "sample" / "challenges.json"
    try:
        build_parser().parse_args(["run", "--challenges", str(sample), "--model", "m", "--out", "o", *run_args])
    except SystemExit:
        sys.exit(f"error: --run-args {shlex.join(run_args)!r} are not valid options of 'python -m submission run'")


# ---------------------------------------------------------------- metadata and its checks


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def check_ref(value: object, parts: int, what: str) -> list[str]:
    """owner/slug (parts=2) or owner/model/framework/variation/version (parts=5)."""
    if not isinstance(value, str) or value.count("/") != parts - 1 or not all(value.split("/")):
        shape = "owner/slug" if parts == 2 else "owner/model/framework/variation/version"
        return [f"{what}: {value!r} is not of the form {shape}"]
    if parts == 5 and not value.split("/")[-1].isdigit():
        return [f"{what}: {value!r}: the version (last part) must be a number"]
    return []


def check_kernel_metadata(meta: dict, folder: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a kernel-metadata.json: the Kaggle API's rules plus this bundle's own."""
    errors, warnings = [], []
    errors += check_ref(meta.get("id"), 2, "id")
    title = meta.get("title")
    if not isinstance(title, str) or len(title) < 5:
        errors.append("title: must be at least five characters")
    elif isinstance(meta.get("id"), str) and "/" in meta["id"] and slugify(title) != meta["id"].split("/")[1].lower():
        warnings.append(f"title {title!r} does not resolve to the id's slug {meta['id'].split('/')[1]!r} "
                        f"(Kaggle warns: the kernel may get another URL)")
    code_file = meta.get("code_file")
    if not code_file:
        errors.append("code_file: a source file must be specified")
    elif not (folder / code_file).is_file():
        errors.append(f"code_file: {folder / code_file} not found")
    if meta.get("language") not in KERNEL_LANGUAGES:
        errors.append(f"language: {meta.get('language')!r} is not one of {KERNEL_LANGUAGES}")
    if meta.get("kernel_type") not in KERNEL_TYPES:
        errors.append(f"kernel_type: {meta.get('kernel_type')!r} is not one of {KERNEL_TYPES}")
    suffix = {"notebook": ".ipynb", "script": ".py"}.get(meta.get("kernel_type"))
    if suffix and isinstance(code_file, str) and code_file and not code_file.endswith(suffix):
        errors.append(f"kernel_type/code_file: a {meta['kernel_type']} kernel's code_file ends in {suffix}, "
                      f"not {code_file!r}")
    if meta.get("kernel_type") == "script":
        warnings.append("kernel_type script: a code competition scores a notebook version, and whether a script "
                        "kernel can be submitted is unconfirmed; the default, a notebook, can")
    for key in ("is_private", "enable_gpu", "enable_internet"):
        if not isinstance(meta.get(key), bool):
            errors.append(f"{key}: must be written explicitly as true or false")
    if meta.get("enable_internet") is not False:
        errors.append("enable_internet: must be false (the competition runs offline)")
    if meta.get("enable_gpu") is not True:
        errors.append("enable_gpu: must be true (vLLM needs the GPU)")
    for key in ("dataset_sources", "competition_sources", "kernel_sources", "model_sources"):
        if not isinstance(meta.get(key, []), list):
            errors.append(f"{key}: must be a list")
    for source in meta.get("dataset_sources", []):
        errors += check_ref(source, 2, "dataset_sources")
    for source in meta.get("kernel_sources", []):
        errors += check_ref(source, 2, "kernel_sources")
    for source in meta.get("model_sources", []):
        errors += check_ref(source, 5, "model_sources")
    competitions = meta.get("competition_sources", [])
    if not competitions:
        errors.append("competition_sources: name the competition (its test data is mounted from it)")
    for source in competitions:
        if not isinstance(source, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]*", source):
            errors.append(f"competition_sources: {source!r} is not a competition slug")
    shape = meta.get("machine_shape")
    if shape in TPU_MACHINE_SHAPES:
        errors.append(f"machine_shape: {shape} is a TPU; the bundle's vLLM needs an NVIDIA GPU "
                      f"(one of {', '.join(GPU_MACHINE_SHAPES)})")
    elif shape not in GPU_MACHINE_SHAPES:
        errors.append(f"machine_shape: {shape!r} is not one of Kaggle's GPU accelerators "
                      f"({', '.join(GPU_MACHINE_SHAPES)}); without it the kernel runs on the account's default GPU")
    image = meta.get("docker_image")
    if image is not None and (not isinstance(image, str) or not image.strip() or " " in image):
        errors.append(f"docker_image: {image!r} is not an image reference")
    pinning = meta.get("docker_image_pinning_type")
    if pinning is not None and pinning not in PINNING_TYPES:
        errors.append(f"docker_image_pinning_type: must be one of {PINNING_TYPES}")
    refs = [meta.get("id"), *meta.get("dataset_sources", []), *meta.get("model_sources", [])]
    if any(isinstance(r, str) and r.startswith(PLACEHOLDER_OWNER + "/") for r in refs):
        warnings.append(f"the template's owner {PLACEHOLDER_OWNER!r} is still in id or sources; pass --owner")
    return errors, warnings


def check_dataset_metadata(meta: dict) -> list[str]:
    """The Kaggle API's rules for ``kaggle datasets create``."""
    errors = check_ref(meta.get("id"), 2, "dataset id")
    if not errors and not 6 <= len(meta["id"].split("/")[1]) <= 50:
        errors.append("dataset id: the slug must be between 6 and 50 characters")
    title = meta.get("title")
    if not isinstance(title, str) or not 6 <= len(title) <= 50:
        errors.append("dataset title: must be between 6 and 50 characters")
    licenses = meta.get("licenses")
    if not isinstance(licenses, list) or len(licenses) != 1 or not isinstance(licenses[0], dict) \
            or not licenses[0].get("name"):
        errors.append("dataset licenses: specify exactly one license ({\"name\": ...})")
    subtitle = meta.get("subtitle")
    if subtitle and not 20 <= len(subtitle) <= 80:
        errors.append("dataset subtitle: must be between 20 and 80 characters")
    return errors


def with_owner(ref: str, owner: str | None) -> str:
    return f"{owner}/{ref.split('/', 1)[1]}" if owner and "/" in ref else ref


def kernel_metadata(template: dict, args, wheels_dataset: str) -> dict:
    meta = dict(template)
    if args.title:
        meta["title"] = args.title
    meta["id"] = args.kernel_id or with_owner(template["id"], args.owner)
    if args.title and not args.kernel_id:
        meta["id"] = f"{meta['id'].split('/')[0]}/{slugify(args.title)}"
    suffix = ".ipynb" if args.kernel_type == "notebook" else ".py"
    meta["code_file"] = args.code_file or str(Path(template.get("code_file") or slugify(meta["title"])).with_suffix(suffix))
    meta["language"], meta["kernel_type"] = "python", args.kernel_type
    meta["is_private"] = False if args.public else bool(template.get("is_private", True))
    meta["enable_gpu"], meta["enable_internet"] = True, False
    meta["competition_sources"] = args.competition or template.get("competition_sources", [])
    meta["machine_shape"] = args.machine_shape or template.get("machine_shape") or DEFAULT_MACHINE_SHAPE
    if args.docker_image:
        meta["docker_image"] = args.docker_image
    # The template's first dataset is the wheels, the others are the model's unless replaced.
    template_datasets = [with_owner(d, args.owner) for d in template.get("dataset_sources", [])]
    if args.model_dataset is not None:
        model_datasets = args.model_dataset
    elif args.model_source:
        model_datasets = []  # a Kaggle Model replaces the template's model dataset
    else:
        model_datasets = template_datasets[1:]
    meta["dataset_sources"] = [wheels_dataset, *model_datasets]
    meta["model_sources"] = args.model_source or [with_owner(m, args.owner) for m in template.get("model_sources", [])]
    meta.setdefault("kernel_sources", [])
    return meta


# ---------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Vendor the wheels the Kaggle kernel installs offline, build the one-file kernel and "
                    "its kernel-metadata.json, check them, and print the kaggle commands to run next.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"Defaults match Kaggle's GPU image as of 2026 (Python {DEFAULT_PYTHON_VERSION}, Ubuntu 22.04 = "
               f"glibc 2.35, x86_64) and vLLM {DEFAULT_VLLM_VERSION}; see the README, 'Submitting to Kaggle'.",
    )
    w = p.add_argument_group("wheels")
    w.add_argument("--vllm-version", default=DEFAULT_VLLM_VERSION,
                   help="vLLM release to vendor (default: %(default)s: the last on torch 2.10 = CUDA 12.8, "
                        "which runs on Kaggle's CUDA 12 driver and supports the T4)")
    w.add_argument("--packages", nargs="+", metavar="REQ",
                   help="vendor these requirements instead of vllm==VERSION numpy orjson peft (e.g. for a test: "
                        "--packages orjson numpy)")
    w.add_argument("--uploaded-prior-to", metavar="DATE",
                   help="resolve with the packages as they stood then (ISO 8601; 'none' for the newest); "
                        f"default: {DEFAULT_UPLOADED_PRIOR_TO} for the default vLLM, none otherwise")
    w.add_argument("--python-version", nargs="+", default=list(DEFAULT_PYTHON_VERSIONS), metavar="X.Y",
                   help="Pythons of the target: one lock part each, in one wheel folder, the kernel installs its "
                        "own interpreter's (default: %(default)s: Kaggle's image and the next one's)")
    w.add_argument("--platform", action="append", metavar="TAG",
                   help=f"platform tag of the target, repeatable; a manylinux_2_N tag also admits the older "
                        f"glibc tags (default: {DEFAULT_PLATFORM}, Kaggle's Ubuntu 22.04)")
    w.add_argument("--native", action="store_true",
                   help="target the --pip-python interpreter's version and this machine's platform instead "
                        "(to test the vendoring here)")
    w.add_argument("--pip-python", nargs="+", default=[sys.executable], metavar="PYTHON",
                   help="interpreters whose pip (25.3 or newer) resolves and downloads: for each target Python the "
                        "one of that version, else the first; pip evaluates dependency markers for the Python it "
                        "runs under, so give one per target for an exact lock (default: this one)")
    w.add_argument("--wheels-dir", type=Path, default=DEFAULT_WHEELS_DIR, help="(default: wheels/)")
    w.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="lock file (default: wheels.lock.json)")
    w.add_argument("--relock", action="store_true", help="resolve again even if the lock matches")
    w.add_argument("--lock-only", action="store_true", help="write the lock, download nothing")
    w.add_argument("--skip-wheels", action="store_true", help="only the kernel and the metadata")
    w.add_argument("--wheels-only", action="store_true", help="only the wheels, no kernel or kernel metadata")

    k = p.add_argument_group("kernel")
    k.add_argument("--kernel-dir", type=Path, default=DEFAULT_KERNEL_DIR,
                   help="folder for the kernel file and its kernel-metadata.json: what "
                        "'kaggle kernels push -p' takes (default: build/kernel)")
    k.add_argument("--kernel-type", choices=("notebook", "script"), default="notebook",
                   help="notebook (default: a code competition scores a notebook version) or script (one .py "
                        "file; whether Kaggle lets a script kernel be submitted is unconfirmed); the same code either way")
    k.add_argument("--model-path", metavar="PATH",
                   help="the model folder the kernel uses, as Kaggle mounts it: relative to /kaggle/input or under "
                        "it (e.g. models/alice/arc-model/transformers/default/1); default: the kernel looks for it "
                        "(arc_format.json first, then a Kaggle Models mount) and stops on a tie")
    k.add_argument("--run-args", default="",
                   help="options of 'python -m submission run' built into the kernel, as one string, e.g. "
                        "'--run-args=\"--augmentations 16 --workers 0\"' (checked against the CLI here)")

    m = p.add_argument_group("metadata (defaults from the template kernel-metadata.json)")
    m.add_argument("--template", type=Path, default=TEMPLATE, help="(default: kernel-metadata.json)")
    m.add_argument("--owner", help="your Kaggle user name: replaces the template's owner in the kernel id and datasets")
    m.add_argument("--title", help="kernel title (at least 5 characters); the id's slug follows it")
    m.add_argument("--kernel-id", help="owner/slug of the kernel (default: owner and the title's slug)")
    m.add_argument("--code-file", help="name of the kernel file (default: the template's)")
    m.add_argument("--competition", action="append", metavar="SLUG",
                   help="competition to attach, repeatable (default: the template's)")
    m.add_argument("--wheels-dataset",
                   help=f"owner/slug of the wheels dataset (default: OWNER/{DEFAULT_WHEELS_DATASET_SLUG})")
    m.add_argument("--wheels-title", default=DEFAULT_WHEELS_TITLE, help="(default: %(default)s)")
    m.add_argument("--model-dataset", action="append", metavar="OWNER/SLUG",
                   help="dataset holding your model folder, repeatable (default: the template's)")
    m.add_argument("--model-source", action="append", metavar="OWNER/MODEL/FRAMEWORK/VARIATION/VERSION",
                   help="a Kaggle Model instead of a dataset, repeatable")
    m.add_argument("--public", action="store_true", help="make the kernel public (default: private)")
    m.add_argument("--machine-shape", metavar="ACCELERATOR",
                   help="Kaggle accelerator (kernel-metadata's machine_shape; default: the template's, else "
                        f"{DEFAULT_MACHINE_SHAPE}): " + "; ".join(f"{k} = {v}" for k, v in GPU_MACHINE_SHAPES.items()))
    m.add_argument("--docker-image", metavar="IMAGE",
                   help="pin the kernel's image (kernel-metadata's docker_image), so the environment the wheels "
                        "were built for cannot change under a submission; default: Kaggle's current image")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.native:
        python_versions, platforms = [interpreter_version(args.pip_python[0])], [native_platform()]
    else:
        python_versions, platforms = list(dict.fromkeys(args.python_version)), args.platform or [DEFAULT_PLATFORM]
    platforms = [t for tag in platforms for t in expand_platform(tag)]
    requirements = args.packages or [f"vllm=={args.vllm_version}", *PACKAGE_REQUIREMENTS]
    uploaded_prior_to = args.uploaded_prior_to
    if uploaded_prior_to is None and not args.packages and args.vllm_version == DEFAULT_VLLM_VERSION:
        uploaded_prior_to = DEFAULT_UPLOADED_PRIOR_TO
    if uploaded_prior_to == "none":
        uploaded_prior_to = None
    template = json.loads(args.template.read_text())
    owner = args.owner or template["id"].split("/")[0]
    wheels_dataset = args.wheels_dataset or f"{owner}/{DEFAULT_WHEELS_DATASET_SLUG}"
    problems = []

    lock = None
    if not args.skip_wheels:
        lock = vendor_wheels(args, requirements, python_versions, platforms, uploaded_prior_to)
        dataset_meta = {"title": args.wheels_title, "id": wheels_dataset, "licenses": [{"name": "other"}],
                        "description": "Wheels for an offline pip install on Kaggle, built by build_bundle.py "
                                       f"(requirements: {', '.join(lock['requirements'])}; Python "
                                       f"{' and '.join(python_versions)}). Each wheel keeps its own project's "
                                       "license."}
        write_json(args.wheels_dir / "dataset-metadata.json", dataset_meta)
        problems += check_dataset_metadata(dataset_meta)
    if args.wheels_only:
        return report(problems, [], args, wheels_dataset, kernel=False)

    run_args = shlex.split(args.run_args)
    check_run_args(run_args)
    problems += check_model_path(args.model_path)
    meta = kernel_metadata(template, args, wheels_dataset)
    lock = lock or read_lock(args.lock)
    if lock is None:
        log(f"kernel: note: no lock at {args.lock}: the kernel will not check its wheels dataset's lock")
    for stale in args.kernel_dir.glob("*.ipynb" if args.kernel_type == "script" else "*.py"):
        stale.unlink()  # the other kernel type's file of an earlier build: one code file per kernel folder
    build_kernel(args.kernel_dir / meta["code_file"], meta["title"], run_args, args.kernel_type,
                 build_record(args, meta, lock))
    write_json(args.kernel_dir / "kernel-metadata.json", meta)
    log(f"metadata: wrote {args.kernel_dir / 'kernel-metadata.json'} (id {meta['id']}, enable_internet false)")
    errors, warnings = check_kernel_metadata(meta, args.kernel_dir)
    return report(problems + errors, warnings, args, wheels_dataset, kernel=True)


def check_model_path(path: str | None) -> list[str]:
    if not path:
        return []
    if Path(path).is_absolute() and not Path(path).is_relative_to(DEFAULT_INPUT_DIR):
        return [f"--model-path {path}: give it relative to {DEFAULT_INPUT_DIR}, or under it (where Kaggle mounts "
                "the model)"]
    return []


def kaggle_cli_version() -> str | None:
    """What `kaggle --version` prints, or None where no kaggle CLI is installed."""
    try:
        done = subprocess.run(["kaggle", "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout + done.stderr).strip()


def kaggle_cli_warning(version_output: str | None) -> str | None:
    """A warning when the kaggle CLI is older than MIN_KAGGLE_CLI (or its version cannot be read); None if fine."""
    wanted = ".".join(map(str, MIN_KAGGLE_CLI))
    if version_output is None:
        return f"no kaggle CLI here: the steps below need kaggle >= {wanted} (pip install -U 'kaggle>={wanted}')"
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", version_output)
    if not found:
        return f"cannot read the kaggle CLI's version from {version_output[:120]!r}; the steps below need >= {wanted}"
    version = tuple(int(part) for part in found.groups())
    if version < MIN_KAGGLE_CLI:
        return (f"kaggle CLI {'.'.join(map(str, version))} is older than {wanted}: it drops machine_shape silently, "
                f"so the kernel would run on your account's default accelerator; pip install -U 'kaggle>={wanted}'")
    return None


def report(errors: list[str], warnings: list[str], args, wheels_dataset: str, kernel: bool) -> int:
    cli_warning = kaggle_cli_warning(kaggle_cli_version())
    if cli_warning:
        warnings = [*warnings, cli_warning]
    for warning in warnings:
        log(f"warning: {warning}")
    if errors:
        for error in errors:
            log(f"error: {error}")
        log(f"{len(errors)} problem(s): fix the options (or the template) and run again")
        return 1
    log("checks: the metadata passes the Kaggle API's rules")
    log(f"next (kaggle CLI >= {'.'.join(map(str, MIN_KAGGLE_CLI))}):")
    if not args.skip_wheels:
        log(f"  kaggle datasets create -p {args.wheels_dir}     # first time; later: kaggle datasets version "
            f"-p {args.wheels_dir} -m 'new wheels'   ({wheels_dataset})")
    if kernel:
        meta = json.loads((args.kernel_dir / "kernel-metadata.json").read_text())
        kernel_id, competition = meta["id"], (meta.get("competition_sources") or ["COMPETITION"])[0]
        log(f"  kaggle kernels push -p {args.kernel_dir}     # a new version (it prints its number N), whose commit "
            f"run starts on {meta['machine_shape']}")
        log(f"  kaggle kernels status {kernel_id}     # until it says complete; 'error' = the commit run found a "
            "cause that would score 0 (the log's last line names it)")
        log(f"  kaggle kernels output {kernel_id} -p runs/kaggle     # its log and submission.json, to check")
        log(f"  kaggle competitions submit {competition} -k {kernel_id} -v N -f submission.json -m 'note'     "
            "# N: the version number push printed (also on the kernel's page, Versions); Kaggle reruns it on "
            "the hidden tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
