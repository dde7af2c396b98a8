# Two entry points: `make run` starts the whole system on the embedded default,
# `make test` runs lint, types and the whole suite. Both set themselves up first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint types install hooks lock bench clean postgres-server screenshots

$(STAMP): requirements.lock pyproject.toml
	@echo "set-up: installing the pinned dependencies into $(VENV) (a few minutes, only when they change)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)
	@echo "set-up: done"

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m cost_local.run

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

types: $(STAMP)
	$(BIN)/mypy

# The Dagster-on-PostgreSQL test starts Debian's PostgreSQL server: install it when missing and
# we may (root with apt-get); otherwise say how, and that test is skipped outside CI.
postgres-server:
	@if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's postgresql for the Dagster-on-PostgreSQL test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends postgresql >/dev/null; \
	  else \
	    echo "PostgreSQL server not found (Debian: sudo apt-get install postgresql)"; \
	  fi; \
	fi

# Coverage of the three packages, with the floor set in pyproject.toml ([tool.coverage.report]).
test: lint types postgres-server
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered

# Run ruff on every commit (.pre-commit-config.yaml), as `make lint` does.
hooks: $(STAMP)
	$(BIN)/pre-commit install

# The tests not marked slow, for a quick loop (some still start the warehouse endpoint).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

# Write path and reads against their baselines (engine bulk load, SQL, PostgreSQL 15); not in
# `make test`. `make bench BENCH_ARGS=--quick` for the < 5 minute size.
bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench $(BENCH_ARGS)

# The README's tour: headless Chromium (Debian's `chromium`) against a running `make run`,
# written to docs/*.png.
screenshots: $(STAMP)
	$(BIN)/python -m cost_local.screenshots $(SCREENSHOT_ARGS)

# Re-resolve the pinned set after changing dependencies in pyproject.toml.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade "pip>=25"
	.venv-lock/bin/python -m pip install --quiet -e ".[dev,local,postgres]"
	.venv-lock/bin/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
