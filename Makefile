# lab2land — set-up, demo publish, tests, lint, wheel and benchmarks. Everything a fresh machine
# needs is installed from here: a virtualenv from PyPI (installing lab2land fetches its offline JS
# assets from npm, see setup.py), and (for the browser and PostgreSQL tests) Debian's chromium
# and postgresql.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# What installing lab2land depends on: a change re-installs (and so re-fetches the assets).
INSTALL_INPUTS := pyproject.toml setup.py lab2land/vendor.py $(wildcard vendor/*/*.json vendor/*/build.js)

.PHONY: publish test lint dist setup system-deps serve bench demo-advance clean

BUILD_FLAGS ?=

## publish: install, generate the demo data and build the demo site into reports/
publish: $(BIN)/.installed-demo
	$(BIN)/python publish.py demo-data
	$(BIN)/python publish.py build $(BUILD_FLAGS)

## test: install everything the tests need, lint, then run the whole suite
test: $(BIN)/.installed-test system-deps lint
	$(BIN)/python -m pytest -q -ra

## lint: ruff, configured in pyproject.toml
lint: $(BIN)/.installed-test
	$(BIN)/ruff check .

## dist: the wheel and sdist (with the offline assets inside) in dist/
dist: $(BIN)/.installed-test
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

setup: $(BIN)/.installed-test system-deps

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# The demo (lab2land and its [demo] extra) and the tests (also [test]), editable.
$(BIN)/.installed-demo: $(INSTALL_INPUTS) | $(VENV)/bin/python
	$(BIN)/pip install -q -e ".[demo]"
	touch $@

$(BIN)/.installed-test: $(INSTALL_INPUTS) | $(VENV)/bin/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(BIN)/.installed-demo

# Debian's chromium (browser tests) and postgresql (database tests).
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium postgresql >/dev/null; \
	fi

serve: $(BIN)/.installed-demo
	$(BIN)/python publish.py serve

demo-advance: $(BIN)/.installed-demo
	$(BIN)/python publish.py demo-data --advance 1d

bench: $(BIN)/.installed-test
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:  ## remove the generated site and cache (keeps reports/README.md)
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf .lab2land dist build
