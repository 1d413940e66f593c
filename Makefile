# Two commands work on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev,dask]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/recstats demo

test: $(STAMP)
	$(BIN)/python -m pytest --nbval-lax -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/parse.py
	$(BIN)/python bench/concurrency.py
	$(BIN)/python bench/events.py

lint: $(STAMP)
	$(BIN)/ruff check recstats tests bench

clean:
	rm -rf $(VENV) build *.egg-info
