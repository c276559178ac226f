# Two commands do all set-up on a fresh machine:
#   make demo   a hub on SQLite with agencies exchanging an alert, then stops
#   make test   the test suite, SQLite and PostgreSQL, without the slow and crash tests
#               (make test TESTS=all runs everything; CI does)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint typecheck proto bench clean

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[postgres]'
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.runtime
	$(PY) scripts/demo.py

# The default run leaves out tests marked slow or crash so that it stays quick enough to run
# often; TESTS=all runs them too.
TESTS ?= quick
ifeq ($(TESTS),all)
TEST_MARKERS :=
else ifeq ($(TESTS),quick)
TEST_MARKERS := -m "not slow and not crash"
else
$(error TESTS must be quick or all, not "$(TESTS)")
endif

test: $(VENV)/.dev
	scripts/ensure-test-tools.sh
	scripts/ensure-postgres.sh
	$(PY) -m pytest $(TEST_MARKERS) $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check exchange clients tests scripts bench
	BUF=$(VENV)/bin/buf scripts/check_proto.sh

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy exchange clients/python/exchange_client

proto: $(VENV)/.dev
	PYTHON=$(PY) scripts/generate_proto.sh

bench: $(VENV)/.dev
	$(PY) bench/publish_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
