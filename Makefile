# lab2land — set-up, demo publish, tests and benchmarks. Everything a fresh machine needs is
# installed from here: a virtualenv from PyPI, offline JS assets from npm, and (for the browser
# and PostgreSQL tests) Debian's chromium and postgresql.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
VENDOR := lab2land/static/vendor/.fetched

.PHONY: publish test setup system-deps serve bench demo-advance clean

BUILD_FLAGS ?=

## publish: install, generate the demo data and build the demo site into reports/
publish: $(BIN)/.installed $(VENDOR)
	$(BIN)/python publish.py demo-data
	$(BIN)/python publish.py build $(BUILD_FLAGS)

## test: install everything the tests need, then run the whole suite
test: $(BIN)/.installed $(VENDOR) system-deps
	$(BIN)/python -m pytest -q -ra

setup: $(BIN)/.installed $(VENDOR) system-deps

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# Widget manager bundle etc. from the npm registry, so pages need no CDN.
$(VENDOR): $(BIN)/.installed lab2land/assets.py
	$(BIN)/python -m lab2land.assets fetch
	touch $@

# Debian's chromium (browser tests) and postgresql (database tests).
system-deps:
	@if ! command -v chromium >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium postgresql >/dev/null; \
	fi

serve: $(BIN)/.installed
	$(BIN)/python publish.py serve

demo-advance: $(BIN)/.installed
	$(BIN)/python publish.py demo-data --advance 1d

bench: $(BIN)/.installed $(VENDOR)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:  ## remove the generated site and cache (keeps reports/README.md)
	find reports -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
	rm -rf .lab2land
