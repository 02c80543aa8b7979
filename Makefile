# One command from a fresh clone: `make demo` trains the digits job, `make test` runs the tests.
# Both first make a Python 3.12 virtual environment in $(VENV) with the project installed
# (`pip install -e ".[dev]"`); that happens once, and again only when pyproject.toml changes.
#
#   make demo                                   train configs/dcgan.py:digits into runs/digits
#   make test                                   the whole suite (about 20 minutes)
#   make test PYTEST_ARGS="tests/test_files.py" some of it, or any pytest arguments
#   make venv                                   only the environment (`make install` is the same)
#   make accelerator-bundle MNIST=DIR           what benchmarks/accelerator.sh needs on a GPU image (build/accelerator)
#   make clean                                  remove the environment and build leftovers (not runs/)
#   make test VENV=/elsewhere/venv              any of the above with the environment elsewhere

VENV ?= .venv
PYTEST_ARGS ?= tests
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help demo test venv install clean accelerator-bundle

help:
	@sed -n 's/^#   make/  make/p' $(firstword $(MAKEFILE_LIST))

demo: $(STAMP)
	$(PYTHON) main.py --config configs/dcgan.py:digits --workdir runs/digits

test: $(STAMP)
	$(PYTHON) -m pytest -q $(PYTEST_ARGS)

venv install: $(STAMP)

# The interpreter is found as .ci/run always found it: python3.12 on PATH, else a pyenv 3.12.
# An existing $(VENV) is kept and only (re)installed into.
$(STAMP): pyproject.toml
	@if [ ! -x "$(PYTHON)" ]; then \
	  py=""; \
	  for cand in python3.12 "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.12*/bin/python3.12; do \
	    if command -v "$$cand" >/dev/null 2>&1 && \
	       "$$cand" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then \
	      py="$$cand"; break; \
	    fi; \
	  done; \
	  if [ -z "$$py" ]; then \
	    echo "error: Python 3.12 not found: put python3.12 on PATH or install it with pyenv, or point VENV= at an environment of your own" >&2; \
	    exit 1; \
	  fi; \
	  echo "creating $(VENV) with $$py"; \
	  "$$py" -m venv "$(VENV)" || { rm -rf "$(VENV)"; exit 1; }; \
	fi
	@echo "installing aigc-jax and its dependencies into $(VENV) (a few minutes the first time)"
	"$(PYTHON)" -m pip install --quiet --upgrade pip
	"$(PYTHON)" -m pip install --quiet -e ".[dev]"
	@touch "$@"

# Wheels for the Pythons a GPU image may have (ml-collections, pytest and their dependencies), MNIST's
# IDX files from MNIST=DIR, and the commit; carry build/accelerator to the machine with the tree.
accelerator-bundle: $(STAMP)
	@test -n "$(MNIST)" && ls "$(MNIST)"/t10k-images-idx3-ubyte* >/dev/null 2>&1 || \
	  { echo "error: MNIST='$(MNIST)' must be a folder holding t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz" >&2; exit 2; }
	rm -rf build/accelerator && mkdir -p build/accelerator/wheels build/accelerator/mnist
	for v in 3.10 3.11 3.12 3.13; do \
	  "$(PYTHON)" -m pip download --quiet --only-binary=:all: --python-version $$v -d build/accelerator/wheels \
	    ml-collections pytest || exit 1; \
	done
	cp "$(MNIST)"/t10k-images-idx3-ubyte* "$(MNIST)"/t10k-labels-idx1-ubyte* build/accelerator/mnist/
	git describe --always --dirty --abbrev=10 > build/accelerator/COMMIT
	@du -sh build/accelerator

clean:
	rm -rf "$(VENV)" build *.egg-info .pytest_cache
	find aigc_jax configs tests benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
