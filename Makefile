# make demo   : set up .venv, build the tiny model, run the main job on the bundled sample
# make test   : every test, the real-vLLM engine tests included (what CI runs)
# make test-fast : the quick loop, without the real-engine tests
# make bundle : the Kaggle kernel and its kernel-metadata.json in build/kernel (no wheel download)
# make bench  : the benchmarks (bench/*.py, defaults) with the tiny model; figures in runs/bench/*.json
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TINY := models/tiny-qwen2

.PHONY: setup demo test test-fast bundle bench clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install -r requirements-dev.txt
	# PyPI's builds of these break `import transformers`/`vllm` beside the CPU torch
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec
	# tests/test_report.py opens the HTML report in a real headless browser (Debian's chromium)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	touch $@

setup: $(STAMP)

$(TINY)/config.json: scripts/build_tiny_model.py $(STAMP)
	$(PY) scripts/build_tiny_model.py --out $(TINY)

demo: $(TINY)/config.json
	$(PY) -m submission run --challenges data/sample/challenges.json --solutions data/sample/solutions.json \
		--model $(TINY) --out runs/demo

test: $(STAMP)
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest -m "not engine" tests

bundle: $(STAMP)
	$(PY) build_bundle.py --skip-wheels

bench: $(TINY)/config.json
	$(PY) bench/batching.py --out runs/bench/batching.json
	$(PY) bench/overhead.py --out runs/bench/overhead.json
	$(PY) bench/extras.py --out runs/bench/extras.json

clean:
	rm -rf runs build .pytest_cache
