# lab2: `make run` sets everything up and runs the pipeline; `make test` sets up and runs the tests.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export MPLBACKEND ?= Agg

.PHONY: setup system-deps run lint test test-fast clean

setup: $(VENV)/.installed

# Versions are pinned by constraints.txt (the set CI proves); torch 2.13.0 is the CPU build.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,lint,dask,postgres,auth]"
	touch $@

run: setup
	$(BIN)/lab2 run

# The system tier drives the distribution's Chromium (never a downloaded browser build) and starts
# its own PostgreSQL cluster with Debian's server programs; each is installed only when missing
# (root, as in CI).
CHROMIUM ?= /usr/bin/chromium
system-deps:
	@missing=""; \
	test -x $(CHROMIUM) || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi

# The guard rails: format, lint rules, the type checker and the layers' import contracts. The type
# checker and the contracts read the lab2 namespace (lab2.core, lab2.tasks, ...) through links in
# build/typing: the editable install maps it with an import hook that neither tool follows.
TYPING := build/typing/lab2
lint: setup typing-links
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	PYTHONPATH=build/typing $(BIN)/lint-imports

.PHONY: typing-links
typing-links:
	mkdir -p $(TYPING) && touch $(TYPING)/__init__.py
	ln -sfn ../../../lab2core $(TYPING)/core; ln -sfn ../../../tasks $(TYPING)/tasks
	ln -sfn ../../../flows $(TYPING)/flows; ln -sfn ../../../cli $(TYPING)/cli

# Both tiers: the fast one (no servers, the edit-test loop's `pytest`), then the system one.
# The system tier runs on two xdist workers; the modules that share a module-scoped server stay on one.
test: setup system-deps lint
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m system -n 2 --dist loadgroup --durations=20

test-fast: setup
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) mlflow.db mlruns
