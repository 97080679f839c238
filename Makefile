# Two commands do all set-up: `make run` and `make test` (see README).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install lint format bench clean

# npm installs the web front-end assets (DSFR) into node_modules/; without them the pages use a plain stylesheet.
$(STAMP): pyproject.toml $(wildcard package.json)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	if [ -f package.json ]; then \
	  if command -v npm >/dev/null 2>&1; then \
	    npm ci --ignore-scripts --no-audit --no-fund -q || npm install --ignore-scripts --no-audit --no-fund -q \
	      || echo "warning: npm install failed: the web pages use the fallback stylesheet" >&2; \
	  else echo "warning: npm not found: the web pages use the fallback stylesheet" >&2; fi; \
	fi
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ror setup
	$(BIN)/ror serve

test: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

format: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) ror.db ror.db-wal ror.db-shm
