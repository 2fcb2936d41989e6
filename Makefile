# The two commands a fresh machine needs (see README.md):
#   make setup demo   # install, then the main job on built-in data (about 16 minutes on 2 CPU cores)
#   make test         # the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= results

.PHONY: setup demo test test-fast lint

setup:  ## create .venv and install the pinned stack (mmcv built once, then cached in ~/.cache/parcnetv2)
	bash tools/setup_env.sh

demo:  ## pretrain -> Mask R-CNN -> UperNet on the built-in data, with a summary table and pictures
	$(PY) -m parcnetv2.demo --out $(DEMO_OUT)

test:  ## run the test suite on CPU
	$(PY) -m pytest -q

test-fast:  ## the unit tests only (about a minute): everything not marked slow
	$(PY) -m pytest -q -m "not slow"

lint:  ## ruff check and ruff format --check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
