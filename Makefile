# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv (Python 3.11) and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) (bpy 5.0 wheels exist for Python 3.11 only)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the CPU build of torch first, so nothing pulls the multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m btgym.demo --out docs/img

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The edit loop (under a minute): every test that starts no Blender process and is not
# slow: the protocol, the numpy modules, scenes in-process, and env, vector env, stream
# and SB3 adapter through scenes served on a thread (blender_side.thread_server).
# `make test` runs the rest too: the tests marked blender (see tests/conftest.py) and slow.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not blender and not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/cube_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
