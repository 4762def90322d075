# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_AUTH_MODE ?= disabled

.PHONY: test demo bench lint clean gpu-data gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 first: the CPU wheel on the machine's disk, so no CUDA build is pulled in; and
# pinned again beside the package, or pip's resolver may trade it for a newer (CUDA) torch
# within the package's range (it did on 2026-12-02: torch 2.14.1 and 3 GB of nvidia wheels).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]' torch==2.13.0
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check recarchive tests jobs studies
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m recarchive.demo

bench: $(STAMP)
	$(BIN)/recarchive bench ans --json

# The GPU path, on a machine with CUDA (the device machine: its own python3 with torch; the
# checkout alone travels, so `make gpu-data` here first writes the blocks to carry in .gpu/).
GPU_BLOCKS := .gpu/cifar10_test_1024.npy

gpu-data: $(STAMP)
	$(BIN)/python -m recarchive.bench.gpu_check --save-blocks $(GPU_BLOCKS)

gpu-check:
	PYTHONPATH=. python3 -m pytest -q -p no:cacheprovider -k cuda tests/test_ans.py \
		tests/test_exact_layers.py tests/test_normal.py tests/test_prng.py \
		tests/test_int8_arithmetic.py
	PYTHONPATH=. python3 -m recarchive.bench.gpu_check --blocks-file $(GPU_BLOCKS)
	PYTHONPATH=. python3 -m recarchive.bench.gpu_check --blocks-file $(GPU_BLOCKS) \
		--model bitswap-cifar-2026-12

lint: $(STAMP)
	$(BIN)/ruff check recarchive tests jobs studies

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
