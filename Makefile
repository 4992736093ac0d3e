# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates a virtual environment in the checkout and installs what it needs.
#
# The interpreter: PYTHON if given, else the first that runs of python3.11 (bpy 5.0 and a
# CPU build of torch: the cheapest install, ~2 minutes) and python3.13 (bpy 5.3, numpy 2;
# pip brings torch's CUDA build there, ~3 GB). pyenv's versions count when their shims
# are not active. Python 3.12 has no bpy wheel: see the README's support matrix.
PREFERRED_PYTHONS := 3.11 3.13
find_python = $(shell for v in $(PREFERRED_PYTHONS); do \
	for p in python$$v $$(pyenv root 2>/dev/null)/versions/$$v*/bin/python$$v; do \
	"$$p" -c "" 2>/dev/null && { command -v "$$p"; exit 0; }; done; done)
PYTHON ?= $(find_python)
PYTHON_VERSION := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(PYTHON_VERSION)

.PHONY: demo test test-fast lint bench clean which-python

$(STAMP): pyproject.toml
	@test -n "$(PYTHON_VERSION)" || { echo "needs Python 3.11 or 3.13 (bpy wheels exist for those; PYTHON=... to choose)"; exit 1; }
	@echo "btgym: Python $(PYTHON_VERSION) at $(PYTHON) -> $(VENV)"
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Python 3.11: torch's CPU build first, so nothing pulls the multi-GB CUDA build
	# (on 3.13 no CPU build is on the package index: the CUDA build runs on the CPU).
	if [ "$(PYTHON_VERSION)" = 3.11 ]; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

which-python:
	@echo "$(PYTHON) (Python $(PYTHON_VERSION))"

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
	rm -rf .venv .venv-* .pytest_cache .ruff_cache
