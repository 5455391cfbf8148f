# lab2: `make run` sets everything up and runs the pipeline; `make test` sets up and runs the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export MPLBACKEND ?= Agg

.PHONY: setup browser run test test-fast clean

setup: $(VENV)/.installed

# Versions are pinned by constraints.txt (the set CI proves); torch 2.13.0 is the CPU build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,dask,postgres]"
	touch $@

run: setup
	$(BIN)/lab2 run

# The browser tests drive the distribution's Chromium (never a downloaded browser build).
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

# Both tiers: the fast one (no servers, the edit-test loop's `pytest`), then the system one.
test: setup browser
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m system

test-fast: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) mlflow.db mlruns
