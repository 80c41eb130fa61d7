# Two entry points, each installs what it needs into .venv first:
#   make demo   -> the main job: FOCUS vs vanilla on the bundled default model, offline
#   make test   -> the offline test suite
# TORCH overrides the torch requirement (e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cu124").

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test lint bench clean

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# torch first: any package that needs torch then finds it instead of pulling a CUDA build
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[all]"
	touch $@

$(VENV)/.test: $(VENV)/.base
	$(PIP) install -e ".[test]"
	# easy-vqa is a build-time dependency (training data). Its wheel also installs a top-level `test` package
	# that shadows the standard library's, so it lives outside the environment and only the training runs see it.
	$(PIP) install --no-deps --target $(VENV)/build-deps easy-vqa
	touch $@

demo: $(VENV)/.base
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/focus demo

test: $(VENV)/.test
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 FOCUS_BUILD_DEPS=$(abspath $(VENV)/build-deps) $(PY) -m pytest -q

lint: $(VENV)/.test
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(VENV)/.base
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) build *.egg-info
