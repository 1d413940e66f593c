# Two commands work on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install bench lint notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
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
	$(BIN)/python bench/capture_snapshot.py
	$(BIN)/python bench/dashboard.py
	$(BIN)/python bench/archive_names.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/soak.py

# re-run the notebooks and save their outputs (after changing what they show)
notebooks: $(STAMP)
	cd notebooks && ../$(BIN)/jupyter execute --inplace *.ipynb

lint: $(STAMP)
	$(BIN)/ruff check recstats tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build *.egg-info
