# The two commands of the README:
#   make demo   installs everything, loads the synthetic demo city and serves it
#   make test   installs everything and runs the test suite on a throw-away PostGIS
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install system demo test serve lint bench-ingest clean-db

install: system $(VENV)/.installed

system:
	@PY=$(PY) bash scripts/install-system.sh

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

demo: install
	$(BIN)/gis-server demo

serve: install
	$(BIN)/gis-server serve

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check gis_server layers ingest models map_ui tests bench

bench-ingest: install
	$(BIN)/python bench/bench_ingest.py

clean-db:
	-$(BIN)/gis-server db stop
	rm -rf var/pgdata
