# `make demo` runs the example on the embedded SQLite default; `make test` runs the whole suite
# (SQLite and PostgreSQL). Both build .venv first.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,dev,pandas,parquet,plot]'
	touch $(STAMP)

.PHONY: demo test lint clean
demo: $(STAMP)
	$(VENV)/bin/python examples/storage_example.py

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) build dist src/*.egg-info
