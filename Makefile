# The two commands a fresh machine needs: `make setup` then `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test lint

setup:  ## create .venv and install the pinned stack (mmcv built once, then cached in ~/.cache/parcnetv2)
	bash tools/setup_env.sh

test:  ## run the test suite on CPU
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check .
