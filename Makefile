# `make demo` and `make test` each build .venv when missing, install pdeml, then run.
# torch is pinned to the local CPU wheel; override with e.g. `make test TORCH=torch==2.5.1`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pdeml-installed
EXTRAS ?= dev,solvers,onnx,docs,well
# OpenBLAS worker threads make small BLAS calls 15-100x slower on a busy 2-core machine.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test test-all lint docs bench install clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]" "$(TORCH)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/pdeml demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -x --timeout=900 -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q --timeout=1800

lint: $(STAMP)
	$(VENV)/bin/ruff check pdeml tests scripts
	$(VENV)/bin/lint-imports --no-cache

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a warning fails the build.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) runs .pytest_cache
