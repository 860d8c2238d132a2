#!/usr/bin/env bash
# Rehearse the Kaggle kernel's start-up offline, as close to Kaggle's image as a CPU machine gets.
# Outside CI: it downloads the locked wheelhouse (several GB) and a torch wheel.
#
#   scripts/rehearse_kaggle.sh [PYTHON=python3.12] [WORK=runs/rehearsal]
#
# 1. build_bundle.py downloads the locked wheels of PYTHON's version into wheels/ and builds the kernel;
# 2. a fresh virtual environment of PYTHON gets another torch and a torchvision built for it, as
#    Kaggle's image has (torch 2.11 there, the lock pins vLLM 0.19.1's torch 2.10);
# 3. the kernel runs in a fake /kaggle tree of the 2026 layout (competitions/<slug>/, datasets/<owner>/<slug>/)
#    with that interpreter: its own offline install (pip --no-index from the wheels), `import vllm`, then
#    the run. Without a GPU it must end with the fallback submission and the line naming the cause.
# Prints the install time and the installed size; the figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3.12}
WORK=${2:-runs/rehearsal}
VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
HOST_PY=${HOST_PY:-.venv/bin/python}
mkdir -p "$WORK"

echo "== 1. wheels for Python $VERSION and the kernel"
# a copy of the committed lock: the build writes the lock of the Pythons it is given, here one
cp wheels.lock.json "$WORK/wheels.lock.json"
"$HOST_PY" build_bundle.py --python-version "$VERSION" --pip-python "$PYTHON" --lock "$WORK/wheels.lock.json" \
  --owner rehearsal --model-dataset rehearsal/arc-demo-model
KERNEL=$(ls build/kernel/*.py | head -1)

echo "== 2. a fresh Python $VERSION environment holding another torch and a torchvision built for it"
rm -rf "$WORK/venv"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"$WORK/venv/bin/python" -m pip install --quiet --no-deps torch==2.11.0 torchvision==0.26.0

echo "== 3. the kernel in a fake /kaggle tree of the 2026 layout"
ROOT="$WORK/kaggle"
rm -rf "$ROOT"
mkdir -p "$ROOT/input/competitions/arc-prize-2026-arc-agi-2" "$ROOT/input/datasets/rehearsal" "$ROOT/working"
cp data/sample/challenges.json "$ROOT/input/competitions/arc-prize-2026-arc-agi-2/arc-agi_test_challenges.json"
ln -s "$PWD/wheels" "$ROOT/input/datasets/rehearsal/arc-vllm-wheels"
ln -s "$PWD/models/arc-demo" "$ROOT/input/datasets/rehearsal/arc-demo-model"
started=$(date +%s)
set +e
env -i PATH=/usr/bin:/bin HOME="$HOME" "$WORK/venv/bin/python" "$KERNEL" --input-dir "$ROOT/input" \
  --working-dir "$ROOT/working" --time-budget 1800 2>&1 | tee "$WORK/kernel.log"
set -e
echo "== kernel ended after $(( $(date +%s) - started )) s"
echo "== installed size: $(du -sh "$WORK/venv" | cut -f1)"
"$WORK/venv/bin/python" -c 'import vllm, torch; print("vllm", vllm.__version__, "torch", torch.__version__)'
grep -E "^install:" "$WORK/kernel.log" || true
grep -E "no usable GPU|fallback" "$WORK/kernel.log" || { echo "rehearsal: the kernel did not name the cause"; exit 1; }
test -s "$ROOT/working/submission.json" && echo "rehearsal: $ROOT/working/submission.json written"
