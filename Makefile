# Everything needs only Python 3.11+: the first target that runs creates .venv and installs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test lint pytest schema clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run: the whole system on the embedded broker and Redis, sample store configuration
run: install
	$(BIN)/switchboard dev --config config/store.yaml

## demo: the same, with simulated customers on every channel and agents on the hub
demo: install
	$(BIN)/switchboard simulate --config config/store.yaml $(ARGS)

## test: lint and type checks, then the whole test suite (own broker and Redis)
test: lint pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: install system-deps
	$(BIN)/pytest

## system-deps: Debian's Chromium (browser test) and dovecot-imapd (IMAP tests); only as root
system-deps:
	sh scripts/system-deps.sh

## schema: regenerate the published JSON Schemas of the events
schema: install
	$(BIN)/switchboard schema --out docs/events/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
