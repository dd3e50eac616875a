# Every target creates the local virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= build/demo
# The dev tools, and dagster-postgres for the Postgres instance test.
EXTRAS ?= dev,postgres
# The sample's events are from the week before this instant; rule windows count back from it.
SAMPLE_AS_OF ?= 2026-11-07T00:00:00

.PHONY: demo test test-fast test-system-packages lint dev bench clean

$(BIN)/segpipe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@touch $@

## The sample deployment end to end: a fresh copy of data/ through `segpipe run`.
demo: $(BIN)/segpipe
	@rm -rf $(DEMO)
	@$(BIN)/segpipe sample $(DEMO)
	@# exit 2 means "ran, and some file was rejected": the sample has bad files on purpose.
	@$(BIN)/segpipe run --data-dir $(DEMO) --as-of $(SAMPLE_AS_OF); status=$$?; \
	  if [ $$status -eq 2 ]; then echo "(exit 2: the sample's deliberately bad files were rejected, as they should be)"; exit 0; fi; \
	  exit $$status

# The tests are spread over PYTEST_WORKERS processes (pytest-xdist; `auto`: one per core), a
# file's tests in one worker so that its module-scoped runs happen once; PYTEST_WORKERS=0 runs
# them in this one process.
PYTEST_WORKERS ?= auto
# The tests' files go to RAM (/dev/shm) when it has 4 GiB free: every test writes a warehouse, a
# Dagster home and an inbox, and a suite writes ~2 GB (README, Quick start, has the times).
TEST_TMPDIR ?= $(shell df --output=avail -B1M /dev/shm 2>/dev/null | awk 'NR == 2 && $$1 >= 4096 {print "/dev/shm"}')
PYTEST = $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR) )$(BIN)/pytest -q -n $(1) --dist loadfile

# Everything, e2e included, on every core (CI runs this). System packages first: without them
# the run would end in a wall of browser tracebacks.
test: test-system-packages $(BIN)/segpipe
	$(call PYTEST,$(PYTEST_WORKERS))

## The tests that need no server, browser or whole segpipe process (the `e2e` mark), on every core.
test-fast: $(BIN)/segpipe
	$(call PYTEST,auto) -m "not e2e"

# Debian packages the tests drive: Chromium (browser tests), PostgreSQL (the Postgres instance
# test starts its own server), OpenSSH's server (the SFTP delivery tests start their own). As root, `make test` installs the missing ones; otherwise it stops
# before anything runs, with one line naming them.
CHROMIUM ?= /usr/bin/chromium
POSTGRES_INITDB ?= /usr/lib/postgresql/*/bin/initdb
SSHD ?= /usr/sbin/sshd
MISSING_PACKAGES := $(strip $(if $(wildcard $(CHROMIUM)),,chromium) \
	$(if $(wildcard $(POSTGRES_INITDB)),,postgresql) $(if $(wildcard $(SSHD)),,openssh-server))
APT_GET = DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300
# Non-empty when make runs as root, the one case where it may install packages.
AS_ROOT ?= $(filter 0,$(shell id -u))
test-system-packages:
ifneq ($(MISSING_PACKAGES),)
	$(if $(AS_ROOT),,$(error make test needs the Debian packages $(MISSING_PACKAGES): run sudo apt-get install $(MISSING_PACKAGES)))
	$(APT_GET) update && $(APT_GET) install -y $(MISSING_PACKAGES)
endif

lint: $(BIN)/segpipe
	$(BIN)/ruff check segpipe segpipe_tests
	@# dg wants to know it runs in the project's own environment, not an activated other one.
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/dg check defs

## The Dagster UI over a copy of the sample in build/demo (or DEMO=path: a deployment of your own), with segpipe's instance settings.
dev: $(BIN)/segpipe
	@test -d $(DEMO) || $(BIN)/segpipe sample $(DEMO)
	@mkdir -p $(DEMO)/.dagster && cp -n segpipe/dagster.yaml $(DEMO)/.dagster/dagster.yaml || true
	@# segpipe's Dagster settings (segpipe/defs/instance.py) for the daemon and webserver, which create runs.
	env $$($(BIN)/python -m segpipe.defs.instance) SEGPIPE_DATA_DIR=$(abspath $(DEMO)) DAGSTER_HOME=$(abspath $(DEMO))/.dagster $(BIN)/dagster dev -w workspace.yaml

## `segpipe bench` (SCALE=small|full); results in build/bench-$(SCALE)/bench.json.
SCALE ?= small
bench: $(BIN)/segpipe
	$(BIN)/segpipe bench --scale $(SCALE) --dir build/bench-$(SCALE)

clean:
	rm -rf $(VENV) build
