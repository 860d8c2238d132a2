# make demo   : set up .venv, run the main job with the committed demo model on the bundled demo tasks
# make test   : every test, the real-vLLM engine tests included (what CI runs)
# make test-fast : the quick loop, without the real-engine tests and those that download (works offline)
# make bundle : the Kaggle kernel and its kernel-metadata.json in build/kernel (no wheel download)
# make bench  : the benchmarks (bench/*.py, defaults) with the tiny model; figures in runs/bench/*.json
# make solve-rate : what the demo model solves, by views and selection method (docs/solve_rate.md)
# make train-demo : train a demo model from scratch on this machine's CPU (about 2 h; resumes after a stop)
# make mutation : mutation testing of the pure core modules against the fast suite (mutmut; not in CI)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TINY := models/tiny-qwen2
DEMO_MODEL := models/arc-demo

.PHONY: setup browser demo test test-fast bundle bench solve-rate train-demo mutation clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	# PyPI's builds of these break `import transformers`/`vllm` beside the CPU torch
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec
	# submission/ and devkit/ importable from bench/ and scripts/ (pyproject.toml)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

setup: $(STAMP)

$(TINY)/config.json: scripts/build_tiny_model.py $(STAMP)
	$(PY) scripts/build_tiny_model.py --out $(TINY)

demo: $(STAMP)
	$(PY) -m submission run --challenges data/demo/challenges.json --solutions data/demo/solutions.json \
		--model $(DEMO_MODEL) --out runs/demo --fresh

solve-rate: $(STAMP)
	$(PY) bench/solve_rate.py --model $(DEMO_MODEL) --docs docs/solve_rate.md

train-demo: $(STAMP)
	$(PY) scripts/train_demo_model.py --preset cpu --out runs/train-demo

# tests/test_report.py opens the HTML report in a real headless browser: Debian's chromium. As root
# (CI) it is installed here; otherwise the line says how, and that test fails naming it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "make test: the browser test needs Debian's chromium: sudo apt-get install chromium"

# Two test processes (pytest-xdist), whole files each: most of the time goes to starting vLLM engines,
# whose imports use one core. The slowest tests are listed at the end (docs/benchmarks.md, section 8).
test: $(STAMP) browser
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=20 tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not engine and not network" tests

bundle: $(STAMP)
	$(PY) build_bundle.py --skip-wheels

bench: $(TINY)/config.json
	$(PY) bench/batching.py --out runs/bench/batching.json
	$(PY) bench/overhead.py --out runs/bench/overhead.json
	$(PY) bench/extras.py --out runs/bench/extras.json

mutation: $(STAMP)
	$(PY) -m pip install --quiet "mutmut>=3.8,<4"
	# one torch thread: a forked mutant run hangs in torch's thread pool if the parent process started one
	# mutmut's exit status cannot tell a finished run from one a test's os._exit ended: the summary checks the figures
	OMP_NUM_THREADS=1 $(VENV)/bin/mutmut run --max-children 2 || true
	mkdir -p runs && $(PY) scripts/mutation_summary.py --json runs/mutation.json

clean:
	rm -rf runs build .pytest_cache mutants
