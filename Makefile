# lab2: `make run` sets everything up and runs the pipeline; `make test` sets up and runs the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export MPLBACKEND ?= Agg

.PHONY: setup run test clean postgres-server

setup: $(VENV)/.installed

# Versions are pinned by constraints.txt (the set CI proves); torch 2.13.0 is the CPU build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,dask,postgres,auth]"
	touch $@

run: setup
	$(BIN)/lab2 run

test: setup postgres-server
	$(BIN)/python -m pytest

# The system tier starts its own PostgreSQL cluster with Debian's server programs; installed only when missing.
postgres-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update && apt-get install -y postgresql)

clean:
	rm -rf $(VENV) mlflow.db mlruns
