# `make up` and `make test` need nothing but Python 3.11+: every server is embedded (the
# `devstack` extra, pulled in by `dev`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=
comma := ,
# requirements/*.txt pin every dependency with its hashes, resolved on this Python.
LOCKED_PYTHON := 3.11
LOCK_VENV := $(VENV)/lock-tools
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
	--no-emit-find-links

.PHONY: install up test lint fmt clean lock

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# From the lock on its Python; on another Python, from pyproject.toml's own pins.
$(STAMP): pyproject.toml requirements/dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(LOCKED_PYTHON))))'; then \
	  echo "$(BIN)/python -m pip install --require-hashes -r requirements/dev.txt"; \
	  $(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.txt \
	  && $(BIN)/python -m pip install --quiet --no-deps -e .; \
	else \
	  echo "note: requirements/dev.txt is locked for Python $(LOCKED_PYTHON); installing from pyproject.toml"; \
	  $(BIN)/python -m pip install --quiet -e '.[dev]'; \
	fi
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	@# The worker's sandbox re-imports workflows/ for every incident: give it bytecode.
	$(BIN)/python -m compileall -q workflows
	$(BIN)/awfdrs up $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolve requirements/prod.txt (the image) and requirements/dev.txt (make install) after
# changing pyproject.toml's dependencies; run on Python $(LOCKED_PYTHON).
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || ($(PYTHON) -m venv $(LOCK_VENV) \
	  && $(LOCK_VENV)/bin/python -m pip install --quiet pip-tools==7.7.0)
	$(LOCK_VENV)/bin/pip-compile $(LOCK_FLAGS) -o requirements/prod.txt pyproject.toml
	$(LOCK_VENV)/bin/pip-compile $(LOCK_FLAGS) --extra dev --extra devstack --extra reports \
	  -o requirements/dev.txt pyproject.toml
	@# `dev` names `awfdrs[devstack]`: the project itself, installed by `pip install -e .`.
	sed -i -e '/^# WARNING: pip install will require/,/^# Consider using a hashable URL/d' \
	  -e '/^awfdrs @ /{N;d;}' requirements/dev.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
