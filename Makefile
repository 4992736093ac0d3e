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

# The edit loop (under a minute): the protocol, scene logic in-process (no server), the
# numpy modules, the docs, and a smoke test of each process-level entry point; the tests
# marked slow (training, Ray, recovery, fuzz) and the other process tests run in `make test`.
FAST_TESTS := tests/test_protocol.py tests/test_validation.py tests/test_geometry.py \
	tests/test_params.py tests/test_image_stats.py tests/test_in_process.py \
	tests/test_readback.py tests/test_boundary.py tests/test_docs.py tests/test_coco.py \
	tests/test_detection.py tests/test_curriculum.py tests/test_camera.py \
	tests/test_launch_config.py tests/test_cli.py tests/test_security.py tests/test_env.py
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(FAST_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/cube_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
