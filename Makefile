# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_AUTH_MODE ?= disabled

.PHONY: test demo bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 first: the CPU wheel on the machine's disk, so no CUDA build is pulled in.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check recarchive tests jobs studies
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m recarchive.demo

bench: $(STAMP)
	$(BIN)/recarchive bench ans --json

lint: $(STAMP)
	$(BIN)/ruff check recarchive tests jobs studies

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
