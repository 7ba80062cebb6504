# The two commands in the README: `make demo` runs the whole pipeline on the embedded default,
# `make test` runs every check. Both set up the virtual environment themselves and are safe to repeat.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin
# The suite on two processes (pytest-xdist), a test file per process at a time: most of its time is spent waiting on
# real worker, server and database processes, and its session fixtures (a trained model) are made once per process.
TEST_PROCESSES ?= 2

.PHONY: install demo test lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[ml,raster,serve,dev,flower]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tileclass demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint
	bash scripts/services.sh
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile
