# The README's commands. Each target sets up what it needs: a virtual environment in .venv with
# the pinned packages, this package, and a `python3` Jupyter kernel pointing at that environment.
#   make reproduce               run the whole DVC pipeline on params.yaml (the embedded default),
#                                then print each stage's wall time and the total (ose.pipeline.timing; also
#                                written to reports/metrics/stage_times.json, which no stage reads)
#   make reproduce PROFILE=smoke first make params.yaml the named profile (smoke, default, paper)
#   make test                    the test suite
#   make test-fast               the tests not marked slow (about a minute)
SHELL := /bin/bash
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PY := $(BIN)/python

export PATH := $(BIN):$(PATH)
export JUPYTER_PATH := $(abspath $(VENV))/share/jupyter
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup reproduce test test-fast lint format clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ose)"
	touch $@

reproduce: setup
ifdef PROFILE
	$(PY) -m ose.params use $(PROFILE)
endif
	$(PY) -m ose.params check
	since=$$($(PY) -c 'import time; print(time.time())'); \
	$(BIN)/dvc repro; rc=$$?; \
	if [ $$rc -eq 0 ]; then $(BIN)/dvc metrics show; fi; \
	$(PY) -m ose.pipeline.timing --since $$since --out reports/metrics/stage_times.json || rc=$$((rc ? rc : 1)); \
	exit $$rc

# pytest exits 5 when it collected no test: that is a broken suite, not a pass.
test: setup
	$(BIN)/pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

test-fast: setup
	$(BIN)/pytest -q -m "not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean-venv:
	rm -rf $(VENV)
