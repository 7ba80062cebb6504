# The two commands in the README: `make demo` runs the whole pipeline on the embedded default,
# `make test` runs every check. Both set up the virtual environment themselves and are safe to repeat.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin

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
	$(BIN)/pytest
